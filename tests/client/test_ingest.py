"""Ingest: phantom PACS export + labels.csv -> de-identified training store."""

from __future__ import annotations

import json
import os

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner

from client.cli import main
from client.ingest import ingest
from client.workdir import SiteDir
from common.errors import DeidError
from common.store import Store
from simulation.deid_corpus import build_corpus
from simulation.phantom.dicom import read_labels, write_pacs_export


def _site(path) -> SiteDir:
    site = SiteDir(path)
    site.root.mkdir(parents=True, exist_ok=True)
    site.secret.write_bytes(os.urandom(32))
    return site


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    root = tmp_path_factory.mktemp("ingest")
    return root, write_pacs_export(root / "export", "hospital-x", 4, "device-b", seed=5)


def test_ingest_joins_labels_and_keeps_no_identifiers(export, tmp_path):
    root, result = export
    site = _site(tmp_path / "site")
    report = ingest(root / "export", result.labels, site)
    rows = read_labels(result.labels)
    store = Store(site.store)
    assert len(store) == len({r["sop_instance_uid"] for r in rows}) == len(result.files)
    assert report["counts"]["quarantined"] == 0
    # Identifiers from every source header must appear nowhere in the store.
    secrets = set()
    for path in result.files:
        ds = pydicom.dcmread(path)
        secrets |= {
            str(ds.PatientName),
            str(ds.PatientID),
            str(ds.AccessionNumber),
            str(ds.SOPInstanceUID),
            str(ds.StudyInstanceUID),
            str(ds.InstitutionName),
        }
    blob = b"".join(p.read_bytes() for p in site.store.rglob("*") if p.is_file())
    assert not [s for s in secrets if s and s.encode() in blob]
    # Patients keep their grouping under pseudonyms; labels and boxes are joined correctly.
    by_sop = {}
    for r in rows:
        by_sop.setdefault(r["sop_instance_uid"], []).append(r)
    patients_src = {str(pydicom.dcmread(p).PatientID) for p in result.files}
    assert len(store.patients()) == len(patients_src)
    recs = store.records()
    assert all(r.device == "device-b" and r.source == "dicom" for r in recs)
    pairs = 0
    for path in result.files:
        src = pydicom.dcmread(path)
        labels = by_sop[str(src.SOPInstanceUID)]
        region = src.SequenceOfUltrasoundRegions[0]
        x0, y0 = int(region.RegionLocationMinX0), int(region.RegionLocationMinY0)
        x1, y1 = int(region.RegionLocationMaxX1) + 1, int(region.RegionLocationMaxY1) + 1
        frame = src.pixel_array if int(src.get("NumberOfFrames", 1)) == 1 else src.pixel_array[0]
        if frame.ndim == 3:
            frame = frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        crop = frame[y0:y1, x0:x1].astype(np.float64)
        want_boxes = {
            (r["box_x0"] - x0, r["box_y0"] - y0, r["box_x1"] - x0, r["box_y1"] - y0)
            for r in labels
            if r["box_x0"] is not None
        }
        match = [
            r
            for r in recs
            if r.width == crop.shape[1]
            and r.height == crop.shape[0]
            and set(r.boxes) == want_boxes
            and r.pathology == labels[0]["pathology"]
            and r.birads == labels[0]["birads"]
        ]
        assert match, path
        corr = max(
            np.corrcoef(crop.ravel(), store.load_image(r).astype(np.float64).ravel())[0, 1]
            for r in match
        )
        assert corr > 0.99
        pairs += 1
    assert pairs == len(result.files)
    links = json.loads(site.private.joinpath("deid-links.jsonl").read_text().splitlines()[-1])
    assert {link["input_path"] for link in links["links"]} >= {str(p) for p in result.files}


def test_ingest_is_idempotent_and_new_exports_add(export, tmp_path):
    root, result = export
    site = _site(tmp_path / "site")
    first = ingest(root / "export", result.labels, site)
    n = first["store"]["total"]
    again = ingest(root / "export", result.labels, site)
    assert again["store"]["added"] == {} and again["store"]["total"] == n
    corpus = build_corpus(tmp_path / "export2", seed=4)
    corpus.write_labels(tmp_path / "labels2.csv")
    more = ingest(tmp_path / "export2", tmp_path / "labels2.csv", site)
    assert more["store"]["total"] == n + len(corpus.files)
    assert more["counts"]["quarantined"] == len(corpus.malformed)
    store = Store(site.store)
    # 600x800 screens are cropped to their ultrasound region; without regions they stay whole.
    cropped = [r for r in store.records() if (r.width, r.height) == (560, 440)]
    whole = [r for r in store.records() if (r.width, r.height) == (800, 600)]
    assert len(cropped) == sum(f.has_regions for f in corpus.files)
    assert len(whole) == sum(not f.has_regions for f in corpus.files)
    assert all(r.patient.startswith("P") for r in store.records())
    blob = b"".join(p.read_bytes() for p in site.store.rglob("*") if p.is_file())
    assert not [t for t in corpus.tokens if t.encode() in blob]


def test_ingest_needs_site_secret_and_cli(export, tmp_path):
    root, result = export
    with pytest.raises(DeidError, match="busgen-site init"):
        ingest(root / "export", result.labels, SiteDir(tmp_path / "nosecret"))
    site = _site(tmp_path / "site")
    res = CliRunner().invoke(
        main,
        [
            "ingest",
            str(root / "export"),
            "--labels",
            str(result.labels),
            "--workdir",
            str(site.root),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["store"]["total"] == len(result.files)
