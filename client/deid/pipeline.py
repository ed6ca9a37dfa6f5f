"""De-identify one DICOM file or a whole export tree; quarantine what cannot be done safely.

Per file: read it (read-only), check it, apply the allowlist profile to the header, clean the
pixels, record the de-identification, and write a fresh Part 10 file (zeroed preamble, new file
meta) under an opaque name. A file that cannot be de-identified safely is never written; it is
listed in the report by an opaque id with a PHI-free reason, and the site-private log gets the
original path and the full error.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, MediaStorageDirectoryStorage

from client.deid.header import HeaderContext, MalformedInput, check_vrs, clean_dataset, patient_key
from client.deid.keys import Pseudonymizer
from client.deid.pixels import CleanPixels, clean_pixels, write_pixels
from client.deid.profile import METHOD_CODES, PROFILE_NAME
from common.files import atomic_write_bytes

IMPLEMENTATION_CLASS_UID = "2.25.208154839263712419486312546512003477921"
IMPLEMENTATION_VERSION = "BUSGEN_FED_1"


@dataclass
class DeidResult:
    """One successfully de-identified input, with the identifiers needed for joining labels.

    `original` holds the source identifiers (accession number, SOP Instance UID); it lives only
    in memory so ingest can join labels before they are dropped, and is never written out.
    """

    dataset: Dataset
    pixels: CleanPixels
    patient: str
    study: str
    sop_instance_uid: str
    original: dict = field(default_factory=dict, repr=False)

    @property
    def relative_path(self) -> str:
        return f"{self.patient}/{_short(self.study)}/{_short(self.sop_instance_uid)}.dcm"

    def summary(self) -> dict:
        """PHI-free facts about this output, for the report."""
        px = self.pixels
        return {
            "output": self.relative_path,
            "patient": self.patient,
            "frames": int(px.frames.shape[0]),
            "rows": int(px.frames.shape[1]),
            "columns": int(px.frames.shape[2]),
            "photometric": px.photometric,
            "regions": len(px.regions),
            "text_boxes_blanked": px.text_boxes,
            "lossy_source": px.lossy_source,
        }


def write_output(path: Path, data: bytes) -> None:
    """Atomic, so a crash never leaves a half-written file that looks complete.

    Not durable (no fsync per file: it would dominate the run time); the report, written last,
    is synced.
    """
    atomic_write_bytes(path, data, durable=False)


def _short(uid: str) -> str:
    """Opaque file/folder name from a (new, keyed) UID."""
    return uid.rsplit(".", 1)[-1][:20]


class Deidentifier:
    """De-identifies datasets with one site secret; holds no per-run state."""

    def __init__(self, secret: bytes) -> None:
        self.pseudonymizer = Pseudonymizer(secret)

    def read(self, path: Path) -> Dataset:
        """Read a source file (opened read-only); raise MalformedInput for anything unusable."""
        try:
            with open(path, "rb") as fh:
                ds = pydicom.dcmread(fh)
        except InvalidDicomError as exc:
            raise MalformedInput("not a DICOM Part 10 file", str(exc)) from exc
        except Exception as exc:  # truncated header, bad lengths, undecodable encodings
            raise MalformedInput("unreadable or truncated DICOM file", str(exc)) from exc
        if ds.file_meta.get("MediaStorageSOPClassUID") == MediaStorageDirectoryStorage:
            raise MalformedInput("DICOMDIR media directory, not an image")
        return ds

    def deidentify(self, src: Dataset) -> DeidResult:
        """De-identify one dataset in memory; `src` is left untouched."""
        check_vrs(src)
        for item in src.get("SequenceOfUltrasoundRegions", []):
            check_vrs(item, "SequenceOfUltrasoundRegions > ")
        key = patient_key(src)
        pz = self.pseudonymizer
        ctx = HeaderContext(pz, pz.patient(key), pz.date_offset_days(key))
        out = clean_dataset(src, ctx)
        for required in ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
            if required not in out:
                raise MalformedInput(f"missing {required}")
        pixels = clean_pixels(src)
        declared = str(src.get("BurnedInAnnotation", "")).strip().upper() == "YES"
        if declared and not pixels.regions and pixels.text_boxes == 0:
            raise MalformedInput("burned-in annotation declared but not located; review manually")
        write_pixels(out, pixels, multi_frame="NumberOfFrames" in src)
        self._record(out)
        original = {
            "accession": str(src.get("AccessionNumber", "") or "").strip(),
            "sop_instance_uid": str(src.SOPInstanceUID),
            "study_instance_uid": str(src.StudyInstanceUID),
        }
        return DeidResult(
            out,
            pixels,
            ctx.patient_pseudonym,
            str(out.StudyInstanceUID),
            str(out.SOPInstanceUID),
            original,
        )

    @staticmethod
    def _record(out: Dataset) -> None:
        """PS3.15 record of what was done (PatientIdentityRemoved, method, codes, dates, pixels)."""
        out.SpecificCharacterSet = "ISO_IR 100"
        out.PatientIdentityRemoved = "YES"
        out.DeidentificationMethod = PROFILE_NAME
        codes = []
        for value, meaning in METHOD_CODES:
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
            codes.append(item)
        out.DeidentificationMethodCodeSequence = Sequence(codes)
        out.LongitudinalTemporalInformationModified = "MODIFIED"
        # True by construction: outside the regions is blank and every frame's detected text is
        # blank. (A file that declares text we could not locate is not written at all.)
        out.BurnedInAnnotation = "NO"

    def encode(self, result: DeidResult) -> bytes:
        """A fresh Part 10 file: zero preamble, rebuilt file meta, explicit VR little endian."""
        ds = result.dataset
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
        meta.ImplementationVersionName = IMPLEMENTATION_VERSION
        ds.file_meta = meta
        ds.preamble = b"\x00" * 128
        buf = io.BytesIO()
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
        return buf.getvalue()

    def process_file(self, path: Path, output_dir: Path) -> DeidResult:
        """Read, de-identify and write one file; raise MalformedInput to quarantine it."""
        result = self.deidentify(self.read(path))
        write_output(Path(output_dir) / result.relative_path, self.encode(result))
        return result


def iter_inputs(input_dir: Path, exclude: Path | None = None) -> Iterator[Path]:
    """Every regular file under input_dir in a stable order, skipping `exclude` (the output)."""
    input_dir = Path(input_dir)
    exclude = exclude.resolve() if exclude else None
    for root, dirs, files in os.walk(input_dir):
        root_path = Path(root)
        if exclude is not None and (
            root_path.resolve() == exclude or exclude in root_path.resolve().parents
        ):
            dirs[:] = []
            continue
        dirs.sort()
        for name in sorted(files):
            path = root_path / name
            if path.is_file():
                yield path


@dataclass
class TreeResult:
    """Outcome of a whole run: PHI-free entries for the report, private links for the site."""

    outputs: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    private_links: list[dict] = field(default_factory=list)


def deidentify_tree(
    input_dir: Path,
    output_dir: Path | None,
    secret: bytes,
    on_result: Callable[[Path, DeidResult], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TreeResult:
    """De-identify every file under input_dir; write outputs when output_dir is given.

    `on_result` lets ingest join labels with each result while the original identifiers are
    still in memory; they are never part of what is returned for the report.
    """
    deid = Deidentifier(secret)
    input_dir = Path(input_dir)
    paths = list(iter_inputs(input_dir, exclude=output_dir))
    tree = TreeResult()
    for n, path in enumerate(paths, 1):
        rel = str(path.relative_to(input_dir))
        opaque = "Q" + deid.pseudonymizer.opaque("input", rel, 15)
        try:
            ds = deid.read(path)
            result = deid.deidentify(ds)
            if output_dir is not None:
                write_output(Path(output_dir) / result.relative_path, deid.encode(result))
            if on_result is not None:
                on_result(path, result)
        except MalformedInput as exc:
            tree.quarantined.append({"input": opaque, "reason": exc.reason})
            tree.private_links.append(
                {
                    "input_path": str(path),
                    "input": opaque,
                    "quarantined": exc.reason,
                    "detail": exc.detail,
                }
            )
        else:
            tree.outputs.append({"input": opaque, **result.summary()})
            tree.private_links.append(
                {"input_path": str(path), "input": opaque, "output": result.relative_path}
            )
            result.original = {}  # original identifiers are no longer needed
            result.pixels.frames = result.pixels.frames[:0]  # free memory; summary is kept
        if progress is not None:
            progress(n, len(paths))
    return tree
