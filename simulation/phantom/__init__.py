"""Breast-ultrasound phantom simulator: the platform's default data for demo, tests and benchmarks.

`render_case` draws one B-mode image from a tissue model; `simulate_store` fills a training store
with simulated patients; `write_pacs_export` writes what a hospital PACS export looks like (DICOM
with PHI and burned-in banners, plus labels.csv).
"""

from simulation.phantom.devices import DEVICES, DeviceProfile, get_device
from simulation.phantom.dicom import ExportContext, read_labels, write_pacs_export
from simulation.phantom.lesions import LesionSpec, sample_lesion, view_of
from simulation.phantom.phi import FakePatient, fake_institution, fake_patient
from simulation.phantom.render import PATHOLOGIES, PhantomImage, render_case, sample_lesions
from simulation.phantom.sites import (
    iter_site_images,
    pseudonym,
    simulate_multi_device_store,
    simulate_store,
)

__all__ = [
    "DEVICES",
    "DeviceProfile",
    "get_device",
    "LesionSpec",
    "sample_lesion",
    "view_of",
    "PATHOLOGIES",
    "PhantomImage",
    "render_case",
    "sample_lesions",
    "ExportContext",
    "read_labels",
    "write_pacs_export",
    "FakePatient",
    "fake_institution",
    "fake_patient",
    "iter_site_images",
    "pseudonym",
    "simulate_multi_device_store",
    "simulate_store",
]
