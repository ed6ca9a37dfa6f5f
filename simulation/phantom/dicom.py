"""A simulated hospital PACS export: DICOM ultrasound objects with PHI, plus `labels.csv`.

What a site's IT would hand over, and what de-identification must cope with:

- per patient 1-6 images in one or two studies, as Ultrasound Image Storage or Ultrasound
  Multi-frame Image Storage objects;
- a mix of pixel encodings: MONOCHROME2, RGB, JPEG Baseline (YBR_FULL_422, the usual lossy
  ultrasound form; bytes from Pillow, encapsulated by pydicom) and multi-frame cine;
- PHI in the header (name, MRN, other IDs, birth date, address, phone, accession number,
  physicians, operator, institution, station, dates and times, free-text comments, a private
  block that repeats name and MRN), and burned into the pixels: a banner with name, ID, birth
  date, exam date and institution ABOVE the scan area, on every frame;
- a SequenceOfUltrasoundRegions item whose bounds are exactly the scan area (inclusive pixel
  coordinates) with its physical pixel size in cm.

`labels.csv` (one row per lesion; normal images get one row with lesion 0 and empty box):

| column | meaning |
|---|---|
| file | DICOM path relative to the export directory |
| accession_number | the study's accession number (how a hospital joins labels to images) |
| sop_instance_uid | the object's SOP Instance UID |
| frame | frame the box refers to (0; cine clips are labelled on their first frame) |
| pathology | normal, benign or malignant |
| birads | BI-RADS category of the image (1 = negative) |
| lesion | 1-based lesion number within the image, 0 for none |
| lesion_kind | morphology kind (see simulation.phantom.lesions) |
| box_x0, box_y0, box_x1, box_y1 | lesion box in pixels of the exported frame, x1/y1 exclusive |

Overrides let the de-identification tests plant values: `overrides` is a dict of DICOM keywords
to values, or a callable `f(dataset, context)` run just before saving; `banner` is a callable
`f(context) -> list of text lines` replacing the default banner.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from common.errors import DataError
from common.files import atomic_write_bytes
from simulation.phantom.devices import DeviceProfile, get_device
from simulation.phantom.phi import (
    FakeInstitution,
    FakePatient,
    fake_institution,
    fake_name,
    fake_patient,
    fake_study_datetime,
)
from simulation.phantom.render import PhantomImage
from simulation.phantom.sites import check_rates, patient_rngs, plan_patient, render_patient

LABEL_COLUMNS = (
    "file",
    "accession_number",
    "sop_instance_uid",
    "frame",
    "pathology",
    "birads",
    "device",
    "lesion",
    "lesion_kind",
    "box_x0",
    "box_y0",
    "box_x1",
    "box_y1",
)
ENCODINGS = (("gray", 0.35), ("rgb", 0.25), ("jpeg", 0.25), ("cine", 0.15))
BANNER_HEIGHT = 34
PANEL_WIDTH = 64
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"


@dataclass
class ExportContext:
    """What an override or banner callback may look at for the object being written."""

    patient: FakePatient
    institution: FakeInstitution
    phantom: PhantomImage
    encoding: str  # gray, rgb, jpeg or cine
    accession_number: str
    study_datetime: Any  # datetime.datetime
    patient_index: int
    image_index: int
    relpath: str
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ExportResult:
    files: tuple[Path, ...]
    labels: Path
    rows: tuple[dict, ...]


def _uid(*parts: Any) -> str:
    """A deterministic UID in the 2.25 (UUID-derived) arc: the same inputs give the same UID."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()[:16]
    return f"2.25.{int.from_bytes(digest, 'big')}"


def default_banner(ctx: ExportContext) -> list[str]:
    """The scanner's patient banner: name and ID on one line, birth date, exam time, hospital."""
    p, when = ctx.patient, ctx.study_datetime
    return [
        f"{p.display_name}   ID: {p.patient_id}",
        f"DOB {p.birth_date[:4]}-{p.birth_date[4:6]}-{p.birth_date[6:]}   "
        f"{when:%Y-%m-%d %H:%M:%S}   {ctx.institution.name}",
    ]


def _put_lines(
    canvas: np.ndarray,
    lines: Sequence[str],
    x0: int,
    x1: int,
    top: int,
    height: int,
    align: str,
    colour: tuple[int, ...],
) -> None:
    """Draw text lines into the box [x0, x1) x [top, top+height), shrinking the font to fit."""
    font = cv2.FONT_HERSHEY_SIMPLEX
    n = max(1, len(lines))
    for i, text in enumerate(lines):
        scale = 0.38
        (w, h), _ = cv2.getTextSize(text, font, scale, 1)
        while w > x1 - x0 - 4 and scale > 0.2:
            scale -= 0.02
            (w, h), _ = cv2.getTextSize(text, font, scale, 1)
        x = {"left": x0 + 2, "centre": x0 + (x1 - x0 - w) // 2, "right": x1 - w - 2}[align]
        y = top + int((i + 0.5) * height / n + h / 2)
        cv2.putText(canvas, text, (max(x0, x), y), font, scale, colour, 1, cv2.LINE_AA)


def compose_screen(
    img: PhantomImage, dev: DeviceProfile, banner: Sequence[str], colour: bool
) -> tuple[np.ndarray, tuple[int, int]]:
    """The full exported frame: banner above, scan area, parameter panel; returns (frame, offset).

    The scan area is placed at `offset` = (x, y); nothing but the scan area (and the markers the
    scanner draws inside it) lies within the region announced in SequenceOfUltrasoundRegions.
    """
    rows, cols = img.image.shape
    left = max(12, (360 - PANEL_WIDTH - cols) // 2)
    width = left + cols + PANEL_WIDTH
    height = BANNER_HEIGHT + rows + 14
    scan = img.rgb() if colour else img.image[..., None]
    canvas = np.zeros((height, width, scan.shape[2]), np.uint8)
    canvas[BANNER_HEIGHT : BANNER_HEIGHT + rows, left : left + cols] = scan
    text_colour = (235, 225, 120) if colour and dev.tint != (1.0, 1.0, 1.0) else (235, 235, 235)
    text_colour = text_colour[: scan.shape[2]] if colour else (235,)
    _put_lines(canvas, banner, 0, width, 0, BANNER_HEIGHT - 4, dev.banner_style, text_colour)
    panel = [
        dev.probe,
        f"{dev.centre_mhz:.1f}MHz",
        f"G {52 + dev.gain_db:.0f}",
        f"DR {dev.dynamic_range_db:.0f}",
        f"D {dev.depth_mm / 10:.1f}cm",
    ]
    _put_lines(canvas, panel, left + cols + 2, width, BANNER_HEIGHT, 70, "left", text_colour)
    _put_lines(canvas, [dev.model], 0, width, height - 14, 14, "right", text_colour)
    return (canvas if colour else canvas[..., 0]), (left, BANNER_HEIGHT)


def _cine(
    frame: np.ndarray,
    offset: tuple[int, int],
    shape: tuple[int, int],
    n: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """A short clip: the scan area drifts by a pixel or so per frame; banner and panel stay."""
    x, y = offset
    rows, cols = shape
    frames = [frame]
    for k in range(1, n):
        f = frame.copy()
        area = frame[y : y + rows, x : x + cols]
        f[y : y + rows, x : x + cols] = np.roll(area, (int(rng.integers(-1, 2)), k), axis=(0, 1))
        frames.append(f)
    return np.stack(frames)


def _jpeg_frames(frames: np.ndarray) -> list[bytes]:
    """Baseline JPEG with 4:2:2 chroma subsampling, i.e. YBR_FULL_422 in DICOM terms."""
    from PIL import Image

    out = []
    for f in frames:
        buf = io.BytesIO()
        Image.fromarray(f, mode="RGB").save(buf, format="JPEG", quality=90, subsampling=1)
        out.append(buf.getvalue())
    return out


def build_dataset(
    ctx: ExportContext,
    dev: DeviceProfile,
    frames: np.ndarray,
    offset: tuple[int, int],
    site: str,
    seed: int,
    sop_uid: str,
    study_uid: str,
    series_uid: str,
    study_number: int,
) -> Any:
    """The DICOM object for one exported image (pixel data included)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit

    p, inst, when = ctx.patient, ctx.institution, ctx.study_datetime
    multiframe = ctx.encoding == "cine"
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = US_MULTIFRAME if multiframe else US_IMAGE
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = (
        JPEGBaseline8Bit if ctx.encoding == "jpeg" else ExplicitVRLittleEndian
    )
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = sop_uid
    ds.ImageType = ["ORIGINAL", "PRIMARY", "", "0001"]
    # Patient
    ds.PatientName = p.dicom_name
    ds.PatientID = p.patient_id
    ds.IssuerOfPatientID = inst.name
    ds.OtherPatientIDs = p.other_id
    ds.PatientBirthDate = p.birth_date
    ds.PatientSex = p.sex
    ds.PatientAge = f"{when.year - int(p.birth_date[:4]):03d}Y"
    ds.PatientAddress = p.address
    ds.PatientTelephoneNumbers = p.phone
    # Study / series / equipment
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = when.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = when.strftime("%H%M%S")
    ds.ContentTime = when.strftime("%H%M%S") + f".{ctx.image_index:02d}"
    ds.AcquisitionDateTime = when.strftime("%Y%m%d%H%M%S")
    ds.AccessionNumber = ctx.accession_number
    ds.StudyID = f"{study_number:04d}"
    ds.StudyDescription = "US BREAST BILATERAL" if ctx.image_index % 2 else "US BREAST LEFT"
    ds.SeriesDescription = "Breast B-mode"
    ds.ReferringPhysicianName = inst.physicians[0]
    ds.PerformingPhysicianName = inst.physicians[1 + ctx.patient_index % 3]
    ds.OperatorsName = fake_name(np.random.default_rng(ctx.patient_index + seed))
    ds.Modality = "US"
    ds.SeriesNumber = 1
    ds.InstanceNumber = ctx.image_index + 1
    ds.BodyPartExamined = "BREAST"
    ds.ImageLaterality = "L" if ctx.image_index % 2 == 0 else "R"
    ds.Manufacturer = dev.manufacturer
    ds.ManufacturerModelName = dev.model
    ds.SoftwareVersions = "4.2.1"
    ds.DeviceSerialNumber = f"SN{int(_uid('serial', site, dev.name)[-6:]):06d}"
    ds.InstitutionName = inst.name
    ds.InstitutionAddress = inst.address
    ds.InstitutionalDepartmentName = inst.department
    ds.StationName = inst.station
    ds.TransducerData = dev.probe
    ds.ImageComments = f"Pt {p.display_name} referred by {inst.physicians[0].split('^')[0]}"
    ds.BurnedInAnnotation = "YES"
    # A vendor private block that repeats identifiers, as real ones do.
    block = ds.private_block(0x0009, f"{dev.manufacturer.split()[0].upper()} PRIVATE", create=True)
    block.add_new(0x01, "LO", p.dicom_name)
    block.add_new(0x02, "LO", p.patient_id)
    block.add_new(0x03, "DA", ds.StudyDate)
    block.add_new(0x10, "DS", f"{dev.centre_mhz:.1f}")
    # Where the image is, in the frame, and how big a pixel is.
    rows, cols = ctx.phantom.image.shape
    region = Dataset()
    region.RegionSpatialFormat = 1  # 2-D tissue image
    region.RegionDataType = 1  # tissue
    region.RegionFlags = 0
    region.RegionLocationMinX0, region.RegionLocationMinY0 = offset
    region.RegionLocationMaxX1 = offset[0] + cols - 1
    region.RegionLocationMaxY1 = offset[1] + rows - 1
    region.PhysicalUnitsXDirection = 3  # cm
    region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = ctx.phantom.spacing_mm[1] / 10.0
    region.PhysicalDeltaY = ctx.phantom.spacing_mm[0] / 10.0
    region.ReferencePixelX0 = cols // 2
    region.ReferencePixelY0 = 0
    region.TransducerFrequency = int(dev.centre_mhz * 1000)
    ds.SequenceOfUltrasoundRegions = [region]
    # Pixels
    colour = frames.ndim == 4
    if multiframe:
        ds.NumberOfFrames = len(frames)
        ds.FrameTime = 40.0
        ds.CineRate = 25
        ds.FrameIncrementPointer = 0x00181063
    if ctx.encoding == "jpeg":
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.Rows, ds.Columns = frames.shape[1:3]
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.PixelRepresentation = 0
        ds.PlanarConfiguration = 0
        ds.LossyImageCompression = "01"
        ds.LossyImageCompressionMethod = "ISO_10918_1"
        ds.PixelData = encapsulate(_jpeg_frames(frames))
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    else:
        arr = frames if multiframe else frames[0]
        ds.set_pixel_data(arr, "RGB" if colour else "MONOCHROME2", 8, generate_instance_uid=False)
    return ds


def write_pacs_export(
    out_dir: str | Path,
    site: str,
    patients: int,
    device: str,
    malignant_rate: float = 0.35,
    normal_rate: float = 0.1,
    seed: int = 0,
    overrides: dict[str, Any] | Callable[[Any, ExportContext], None] | None = None,
    banner: Callable[[ExportContext], Sequence[str]] | None = None,
    encodings: Sequence[tuple[str, float]] = ENCODINGS,
    image_size: int | tuple[int, int] | None = None,
    progress: bool = False,
) -> ExportResult:
    """Write a PACS-like export of a simulated site into `out_dir` (DICOM/ tree + labels.csv).

    Deterministic for (site, seed, patients): the same patients (and pixels) as
    `simulate_store` with the same arguments, now with PHI and screen layout. Existing files are
    overwritten; labels.csv is written last, so an export with labels.csv is complete.
    """
    dev = get_device(device)
    check_rates(malignant_rate, normal_rate)
    if patients < 1:
        raise DataError(f"--patients must be at least 1, got {patients}")
    names, weights = zip(*encodings)
    bad = set(names) - {n for n, _ in ENCODINGS}
    if bad:
        raise DataError(f"unknown encodings {sorted(bad)}; known: {[n for n, _ in ENCODINGS]}")
    p_enc = np.asarray(weights, float) / sum(weights)
    out = Path(out_dir)
    site_rng = np.random.default_rng(patient_rngs(site, seed, 1)[0].integers(2**63))
    institution = fake_institution(site_rng, site)

    files, rows = [], []
    indices = range(patients)
    if progress:
        from rich.progress import track

        indices = track(indices, description=f"exporting {site}")
    rngs = patient_rngs(site, seed, patients)
    for i in indices:
        pathology, n_images = plan_patient(rngs[i], malignant_rate, normal_rate)
        images = render_patient(rngs[i], pathology, n_images, device, image_size)
        # PHI comes from its own stream so the pixels match simulate_store exactly.
        phi_rng = np.random.default_rng([seed, i, 0x5EED])
        patient = fake_patient(phi_rng)
        n_studies = 2 if n_images >= 2 and phi_rng.uniform() < 0.3 else 1
        studies = [
            (fake_study_datetime(phi_rng), f"A{int(phi_rng.integers(10**8, 10**9))}")
            for _ in range(n_studies)
        ]
        for k, img in enumerate(images):
            s = k * n_studies // n_images
            when, accession = studies[s]
            encoding = str(phi_rng.choice(names, p=p_enc))
            relpath = f"DICOM/PAT{i:05d}/ST{s + 1:02d}/IM{k + 1:04d}.dcm"
            ctx = ExportContext(patient, institution, img, encoding, accession, when, i, k, relpath)
            lines = list(banner(ctx)) if banner else default_banner(ctx)
            frame, offset = compose_screen(
                img,
                dev,
                lines,
                colour=encoding in ("rgb", "jpeg")
                or (encoding == "cine" and phi_rng.uniform() < 0.5),
            )
            frames = (
                _cine(frame, offset, img.image.shape, int(phi_rng.integers(4, 9)), phi_rng)
                if encoding == "cine"
                else frame[None]
            )
            if encoding == "jpeg" and frames.ndim == 3:
                frames = np.repeat(frames[..., None], 3, axis=3)
            sop_uid = _uid("sop", site, seed, i, k)
            ds = build_dataset(
                ctx,
                dev,
                frames,
                offset,
                site,
                seed,
                sop_uid,
                _uid("study", site, seed, i, s),
                _uid("series", site, seed, i, s),
                study_number=s + 1,
            )
            if isinstance(overrides, dict):
                for keyword, value in overrides.items():
                    setattr(ds, keyword, value)
            elif overrides is not None:
                overrides(ds, ctx)
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=True)
            atomic_write_bytes(out / relpath, buf.getvalue())
            files.append(out / relpath)
            rows.extend(_label_rows(relpath, accession, sop_uid, img, offset, device))

    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=LABEL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    labels = out / "labels.csv"
    atomic_write_bytes(labels, text.getvalue().encode())
    return ExportResult(tuple(files), labels, tuple(rows))


def _label_rows(
    relpath: str,
    accession: str,
    sop_uid: str,
    img: PhantomImage,
    offset: tuple[int, int],
    device: str,
) -> list[dict]:
    base = {
        "file": relpath,
        "accession_number": accession,
        "sop_instance_uid": sop_uid,
        "frame": 0,
        "pathology": img.pathology,
        "birads": img.birads,
        "device": device,
    }
    if not img.boxes:
        return [
            {
                **base,
                "lesion": 0,
                "lesion_kind": "",
                "box_x0": "",
                "box_y0": "",
                "box_x1": "",
                "box_y1": "",
            }
        ]
    dx, dy = offset
    return [
        {
            **base,
            "lesion": n,
            "lesion_kind": spec.kind,
            "box_x0": x0 + dx,
            "box_y0": y0 + dy,
            "box_x1": x1 + dx,
            "box_y1": y1 + dy,
        }
        for n, (spec, (x0, y0, x1, y1)) in enumerate(zip(img.lesions, img.boxes), 1)
    ]


def read_labels(path: str | Path) -> list[dict]:
    """Read a labels.csv written by `write_pacs_export` (ints parsed, empty boxes as None)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: labels file not found")
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        missing = set(LABEL_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path}: missing columns {sorted(missing)}")
        out = []
        for row in reader:
            for key in ("frame", "birads", "lesion", "box_x0", "box_y0", "box_x1", "box_y1"):
                row[key] = int(row[key]) if row[key] != "" else None
            out.append(row)
    return out
