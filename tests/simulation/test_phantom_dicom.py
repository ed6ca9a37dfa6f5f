"""The simulated PACS export: valid DICOM read back with pydicom, banner, regions, labels, CLI."""

from __future__ import annotations

import hashlib

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner

from simulation.phantom import fake_patient, read_labels, simulate_store, write_pacs_export
from simulation.phantom.dicom import US_IMAGE, US_MULTIFRAME


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    out = tmp_path_factory.mktemp("pacs")
    return out, write_pacs_export(out, "hospital-t", 10, "device-b", 0.4, 0.1, seed=5)


def _grey(ds) -> np.ndarray:
    arr = ds.pixel_array
    if int(ds.get("NumberOfFrames", 1)) > 1:
        arr = arr[0]
    return arr.mean(axis=2) if arr.ndim == 3 else arr.astype(float)


def test_export_is_valid_varied_dicom(export):
    out, result = export
    kinds = set()
    for path in result.files:
        ds = pydicom.dcmread(path)
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SOPClassUID in (US_IMAGE, US_MULTIFRAME) and ds.Modality == "US"
        frames = int(ds.get("NumberOfFrames", 1))
        assert (ds.SOPClassUID == US_MULTIFRAME) == (frames > 1)
        arr = ds.pixel_array
        assert arr.shape[int(frames > 1) :][:2] == (ds.Rows, ds.Columns)
        kinds.add((ds.PhotometricInterpretation, ds.file_meta.TransferSyntaxUID, frames > 1))
        for keyword in (
            "PatientName",
            "PatientID",
            "PatientBirthDate",
            "AccessionNumber",
            "ReferringPhysicianName",
            "InstitutionName",
            "StudyDate",
        ):
            assert str(ds.data_element(keyword).value)
        assert any(elem.tag.is_private for elem in ds)
        assert ds.BurnedInAnnotation == "YES"
    photometrics = {k[0] for k in kinds}
    assert {"MONOCHROME2", "RGB", "YBR_FULL_422"} <= photometrics
    assert any(k[1] == pydicom.uid.JPEGBaseline8Bit for k in kinds)
    assert any(k[2] for k in kinds)  # at least one cine clip
    patients = {pydicom.dcmread(p, stop_before_pixels=True).PatientID for p in result.files}
    assert len(patients) == 10


def test_banner_above_region_and_regions_match_the_scan_area(export):
    out, result = export
    for path in result.files[:12]:
        ds = pydicom.dcmread(path)
        (region,) = ds.SequenceOfUltrasoundRegions
        x0, y0 = region.RegionLocationMinX0, region.RegionLocationMinY0
        x1, y1 = region.RegionLocationMaxX1, region.RegionLocationMaxY1
        grey = _grey(ds)
        assert 0 < y0 and x1 < ds.Columns and y1 < ds.Rows
        assert (grey[:y0] > 128).sum() > 200  # text burned in above the region
        assert grey[y0 : y1 + 1, x0 : x1 + 1].mean() > 20  # the region holds the image
        assert region.PhysicalDeltaX == pytest.approx(5.2 / (x1 - x0 + 1))  # device-b: 52 mm wide
        assert region.PhysicalDeltaY == pytest.approx(4.5 / (y1 - y0 + 1))


def test_banner_is_the_patients_and_labels_match_the_pixels(export):
    out, result = export
    labels = read_labels(result.labels)
    assert {r["file"] for r in labels} == {str(p.relative_to(out)) for p in result.files}
    # The first patient's first image is the same phantom as render_case would give for its
    # views, so check boxes against the pixels: the lesion box is darker than the region.
    for row in labels:
        ds = pydicom.dcmread(out / row["file"])
        assert ds.AccessionNumber == row["accession_number"]
        assert ds.SOPInstanceUID == row["sop_instance_uid"]
        if row["lesion"] == 0:
            assert row["pathology"] == "normal" and row["birads"] == 1
            continue
        (region,) = ds.SequenceOfUltrasoundRegions
        assert (
            region.RegionLocationMinX0
            <= row["box_x0"]
            < row["box_x1"]
            <= region.RegionLocationMaxX1 + 1
        )
        assert (
            region.RegionLocationMinY0
            <= row["box_y0"]
            < row["box_y1"]
            <= region.RegionLocationMaxY1 + 1
        )
        assert row["birads"] in ((2, 3, 4) if row["pathology"] == "benign" else (4, 5))


def test_export_is_deterministic_and_accepts_overrides(tmp_path):
    a = write_pacs_export(tmp_path / "a", "h", 2, "device-a", seed=9)
    b = write_pacs_export(tmp_path / "b", "h", 2, "device-a", seed=9)
    digest = lambda files: [hashlib.sha256(p.read_bytes()).hexdigest() for p in files]  # noqa: E731
    assert digest(a.files) == digest(b.files)
    assert a.labels.read_text() == b.labels.read_text()

    seen = []

    def plant(ds, ctx):
        ds.PatientComments = f"planted {ctx.patient.patient_id}"
        seen.append(ctx.encoding)

    c = write_pacs_export(
        tmp_path / "c",
        "h",
        2,
        "device-a",
        seed=9,
        overrides=plant,
        banner=lambda ctx: ["PLANTED BANNER"],
        encodings=[("gray", 1.0)],
    )
    ds = pydicom.dcmread(c.files[0])
    assert ds.PatientComments.startswith("planted ") and seen == ["gray"] * len(c.files)
    assert ds.PhotometricInterpretation == "MONOCHROME2"
    plain = pydicom.dcmread(a.files[0])
    assert not np.array_equal(_grey(ds)[:30], _grey(plain)[:30])  # a different banner
    d = write_pacs_export(
        tmp_path / "d", "h", 1, "device-a", seed=9, overrides={"PatientName": "X^Y"}
    )
    assert str(pydicom.dcmread(d.files[0]).PatientName) == "X^Y"


def test_export_pixels_match_the_store_phantom(tmp_path):
    """Export and simulate_store draw the same patients: the region holds the stored image."""
    store = simulate_store(tmp_path / "store", "h", "device-a", 2, seed=9)
    result = write_pacs_export(
        tmp_path / "pacs", "h", 2, "device-a", seed=9, encodings=[("gray", 1.0)]
    )
    assert len(result.files) == len(store)
    stored = {store.load_image(r).tobytes() for r in store.records()}
    for path in result.files:
        ds = pydicom.dcmread(path)
        (region,) = ds.SequenceOfUltrasoundRegions
        crop = ds.pixel_array[
            region.RegionLocationMinY0 : region.RegionLocationMaxY1 + 1,
            region.RegionLocationMinX0 : region.RegionLocationMaxX1 + 1,
        ]
        assert crop.tobytes() in stored


def test_fake_patient_is_deterministic_and_plausible():
    p = fake_patient(np.random.default_rng(1))
    assert p == fake_patient(np.random.default_rng(1))
    assert (
        len(p.birth_date) == 8 and p.sex == "F" and "^" in p.dicom_name and p.patient_id.isdigit()
    )


def test_cli_simulate_writes_an_export(tmp_path):
    from client.cli import main

    res = CliRunner().invoke(
        main,
        [
            "simulate",
            "--site",
            "s",
            "--patients",
            "2",
            "--device",
            "device-c",
            "--seed",
            "1",
            "--out",
            str(tmp_path),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "labels.csv").exists() and list((tmp_path / "DICOM").rglob("*.dcm"))
    bad = CliRunner().invoke(
        main,
        [
            "simulate",
            "--site",
            "s",
            "--patients",
            "1",
            "--device",
            "device-x",
            "--out",
            str(tmp_path / "x"),
        ],
    )
    assert bad.exit_code == 2 and "unknown phantom device" in bad.output
