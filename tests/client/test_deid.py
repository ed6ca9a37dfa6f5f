"""De-identification against the adversarial corpus: nothing planted may survive, images must."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from pydicom.uid import UID

from client.cli import main
from client.deid import Pseudonymizer, detect_text, run_deid
from common.chainlog import ChainLog
from simulation.deid_corpus import REGION, build_corpus


def _hash_tree(root: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("deid")
    corpus = build_corpus(base / "export", seed=3)
    secret = base / "secret.key"
    secret.write_bytes(b"s" * 8 + bytes(range(40)))
    before = _hash_tree(base / "export")
    report = run_deid(base / "export", base / "out", secret, base / "private" / "deid.jsonl")
    outputs = {o["input"]: o for o in report["outputs"]}
    links = ChainLog(base / "private" / "deid.jsonl").verify()[-1]["links"]
    by_source = {link["input_path"]: link for link in links}
    return {
        "base": base,
        "corpus": corpus,
        "secret": secret,
        "before": before,
        "report": report,
        "outputs": outputs,
        "by_source": by_source,
    }


def _output(run, corpus_file) -> Path:
    return run["base"] / "out" / run["by_source"][corpus_file.path]["output"]


def _tokens_found(root: Path, tokens: list[str]) -> set[str]:
    """Planted tokens that occur in any file's bytes or path under `root` (case-insensitive)."""
    found = set()
    for p in (p for p in root.rglob("*") if p.is_file()):
        data, rel = p.read_bytes().lower(), str(p.relative_to(root)).lower()
        found |= {t for t in tokens if t.lower().encode() in data or t.lower() in rel}
    return found


def test_no_planted_token_survives_anywhere(run):
    out, tokens = run["base"] / "out", run["corpus"].tokens
    assert (out / "deid-report.html").is_file()
    # The same search finds most tokens in the export (the rest exist only as burned-in pixels).
    assert len(_tokens_found(run["base"] / "export", tokens)) > 0.8 * len(tokens)
    assert _tokens_found(out, tokens) == set()


def test_sources_untouched_and_malformed_quarantined(run):
    assert _hash_tree(run["base"] / "export") == run["before"]
    report = run["report"]
    assert report["counts"]["deidentified"] == len(run["corpus"].files)
    assert report["counts"]["quarantined"] == len(run["corpus"].malformed)
    assert len(list((run["base"] / "out").rglob("*.dcm"))) == len(run["corpus"].files)
    for path in run["corpus"].malformed:
        assert "quarantined" in run["by_source"][path]
    assert set(report["quarantine_reasons"]) == {
        "not a DICOM Part 10 file",
        "no pixel data",
        "wrong VR for a standard attribute",
        "pixel data cannot be decoded",
    }


def test_header_allowlist_and_deid_record(run):
    for f in run["corpus"].files:
        path = _output(run, f)
        assert path.read_bytes()[:132] == b"\x00" * 128 + b"DICM"
        ds = pydicom.dcmread(path)
        assert not any(elem.tag.is_private for elem in ds.iterall())
        assert not any(
            0x6000 <= elem.tag.group <= 0x60FF or 0x5000 <= elem.tag.group <= 0x50FF
            for elem in ds.iterall()
        )
        for kw in (
            "IconImageSequence",
            "RequestAttributesSequence",
            "InstitutionName",
            "AccessionNumber",
            "PatientBirthDate",
            "DeviceSerialNumber",
            "ImageComments",
            "StudyTime",
            "PatientAddress",
            "OperatorsName",
            "StationName",
        ):
            assert not ds.get(kw), kw
        meta = ds.file_meta
        assert "SourceApplicationEntityTitle" not in meta
        assert "SendingApplicationEntityTitle" not in meta
        assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SOPClassUID == pydicom.dcmread(f.path).SOPClassUID
        for uid in (ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID):
            assert UID(uid).is_valid and uid.startswith("2.25.")
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.BurnedInAnnotation == "NO"
        assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
        codes = [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
        assert codes[:2] == ["113100", "113101"] and "113107" in codes
        assert ds.Manufacturer == "PhantomVendor" and ds.ManufacturerModelName == "PV-100"
        assert "BREAST" in ds.StudyDescription


def test_pseudonyms_uids_and_dates_are_keyed_and_consistent(run, tmp_path):
    files = run["corpus"].files
    a0, a1 = files[0], files[1]  # one patient, two studies 30 days apart
    d0, d1 = pydicom.dcmread(_output(run, a0)), pydicom.dcmread(_output(run, a1))
    assert a0.patient_id == a1.patient_id and d0.PatientID == d1.PatientID
    assert d0.StudyInstanceUID != d1.StudyInstanceUID
    others = {pydicom.dcmread(_output(run, f)).PatientID for f in files[2:]}
    assert d0.PatientID not in others and len(others) == len(files) - 2
    day = lambda s: dt.datetime.strptime(s, "%Y%m%d")  # noqa: E731
    assert day(d1.StudyDate) - day(d0.StudyDate) == day(a1.study_date) - day(a0.study_date)
    assert d0.StudyDate != a0.study_date
    pz = Pseudonymizer(run["secret"].read_bytes().strip())
    assert d0.SOPInstanceUID == pz.uid(a0.sop_uid)
    # A second run (same secret) reproduces every output byte for byte; another secret does not.
    again = run_deid(run["base"] / "export", tmp_path / "again", run["secret"])
    assert again["counts"] == run["report"]["counts"]
    for f in files:
        rel = run["by_source"][f.path]["output"]
        assert (tmp_path / "again" / rel).read_bytes() == _output(run, f).read_bytes()
    other = tmp_path / "other.key"
    other.write_bytes(b"another-site-secret-0123456789")
    third = run_deid(run["base"] / "export", tmp_path / "third", other)
    assert {o["patient"] for o in third["outputs"]}.isdisjoint(
        {o["patient"] for o in run["report"]["outputs"]}
    )


def _frames(ds) -> np.ndarray:
    arr = ds.pixel_array
    if int(ds.get("NumberOfFrames", 1)) == 1:
        arr = arr[None]
    return arr


def test_burned_in_text_blank_and_image_region_preserved(run):
    x0, y0, x1, y1 = REGION
    for f in run["corpus"].files:
        src = pydicom.dcmread(f.path)
        out = pydicom.dcmread(_output(run, f))
        assert out.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        a, b = _frames(src).astype(np.float64), _frames(out).astype(np.float64)
        assert a.shape == b.shape and b.shape[0] == f.frames
        keep = np.zeros(a.shape[1:3], bool)
        keep[y0 : y1 + 1, x0 : x1 + 1] = True
        for bx0, by0, bx1, by1 in f.text_boxes:
            assert np.all(b[:, by0:by1, bx0:bx1] == 0), (f.path, (bx0, by0, bx1, by1))
            # The blanked box is padded by a few pixels to take the glyphs' antialiased edges.
            keep[max(0, by0 - 3) : by1 + 3, max(0, bx0 - 3) : bx1 + 3] = False
        for frame in _frames(out):
            for dx0, dy0, dx1, dy1 in detect_text(frame):
                for bx0, by0, bx1, by1 in f.text_boxes:
                    assert dx1 <= bx0 or bx1 <= dx0 or dy1 <= by0 or by1 <= dy0
        if f.has_regions:
            assert np.all(b[:, ~_region_mask(a.shape[1:3])] == 0)
        corr = np.corrcoef(a[:, keep].ravel(), b[:, keep].ravel())[0, 1]
        assert corr > 0.99, (f.path, corr)


def _region_mask(shape) -> np.ndarray:
    x0, y0, x1, y1 = REGION
    mask = np.zeros(shape, bool)
    mask[y0 : y1 + 1, x0 : x1 + 1] = True
    return mask


def test_report_is_phi_free_data(run):
    report = json.loads((run["base"] / "out" / "deid-report.json").read_text())
    text = json.dumps(report)
    assert "export" not in text and str(run["base"]) not in text
    assert all(set(q) == {"input", "reason"} for q in report["quarantined"])
    assert report["counts"]["text_boxes_blanked"] > 0


def test_cli_deid_exit_code_and_refusals(run, tmp_path):
    runner = CliRunner()
    res = runner.invoke(
        main,
        [
            "deid",
            str(run["base"] / "export"),
            str(tmp_path / "o"),
            "--secret-file",
            str(run["secret"]),
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["counts"]["quarantined"] == len(run["corpus"].malformed)
    res = runner.invoke(
        main,
        [
            "deid",
            str(run["base"] / "export"),
            str(tmp_path / "o2"),
            "--secret-file",
            str(tmp_path / "missing.key"),
        ],
    )
    assert res.exit_code != 0 and "busgen-site init" in res.output
    res = runner.invoke(
        main,
        [
            "deid",
            str(run["base"] / "export"),
            str(tmp_path / "o3"),
            "--secret-file",
            str(run["secret"]),
            "--private-log",
            str(tmp_path / "o3" / "log.jsonl"),
        ],
    )
    assert res.exit_code != 0 and "private log" in res.output


def test_uids_are_valid_and_domain_separated():
    pz = Pseudonymizer(b"k" * 32)
    uids = {pz.uid(f"1.2.3.{i}") for i in range(200)}
    assert len(uids) == 200 and all(UID(u).is_valid and len(u) <= 64 for u in uids)
    assert pz.uid("1.2.3") == Pseudonymizer(b"k" * 32).uid("1.2.3")
    assert pz.patient("1.2.3") != pz.opaque("uid", "1.2.3")
    offsets = {pz.date_offset_days(f"id:{i}") for i in range(50)}
    assert len(offsets) > 40 and min(offsets) >= 3650


def test_phantom_pacs_export_is_cleaned(tmp_path):
    from simulation.phantom.dicom import write_pacs_export

    export = write_pacs_export(tmp_path / "export", "hospital-z", 3, "device-c", seed=9)
    secret = tmp_path / "secret.key"
    secret.write_bytes(bytes(range(32)))
    report = run_deid(tmp_path / "export", tmp_path / "out", secret)
    assert report["counts"]["deidentified"] == len(export.files)
    phi = set()
    for path in export.files:
        ds = pydicom.dcmread(path)
        for kw in (
            "PatientName",
            "PatientID",
            "OtherPatientIDs",
            "PatientBirthDate",
            "PatientAddress",
            "AccessionNumber",
            "InstitutionName",
            "StationName",
            "ReferringPhysicianName",
            "OperatorsName",
            "DeviceSerialNumber",
            "StudyInstanceUID",
            "SeriesInstanceUID",
            "SOPInstanceUID",
            "StudyDate",
        ):
            value = str(ds.get(kw, "") or "")
            if len(value) >= 4:
                phi.add(value.lower())
    blobs = [p.read_bytes().lower() for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert phi and not [v for v in phi if any(v.encode() in b for b in blobs)]
    for path in (tmp_path / "out").rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        region = ds.SequenceOfUltrasoundRegions[0]
        frames = _frames(ds)
        assert np.all(frames[:, : int(region.RegionLocationMinY0)] == 0)  # the banner is gone
