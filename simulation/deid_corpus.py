"""Adversarial de-identification corpus: PACS-like files with a unique token in every hiding place.

Built on the phantom simulator's B-mode images. Every attribute family a real export can carry
PHI in gets its own token (names, ids, dates, UIDs, descriptions, physicians, institution,
addresses, free text, nested sequences, private tags, overlays, curves, icon images, the
preamble, file-meta AE titles, file and folder names) and the same tokens are rendered as
burned-in text into the pixels (banner, footer and annotations inside the image region, in every
frame). The variants cover grey, RGB, YBR_FULL_422 JPEG, multi-frame cine, missing regions and
two studies of one patient; malformed inputs (truncated, no pixels, wrong VR, non-DICOM) sit
beside them. A test then scans every byte of every output for every token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit

from simulation.phantom import render_case

US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
ROWS, COLS = 600, 800
REGION = (120, 100, 679, 539)  # inclusive x0, y0, x1, y1 of the scan area on screen
UID_ROOT = "1.2.826.0.1.3680043.8.498.7"


@dataclass
class CorpusFile:
    """One valid input and what the test needs to check its output."""

    path: str
    patient_id: str
    study_uid: str
    sop_uid: str
    accession: str
    study_date: str
    text_boxes: list[tuple[int, int, int, int]]  # where tokens were burned in (x0,y0,x1,y1)
    has_regions: bool
    colour: bool
    frames: int
    pathology: str = "benign"
    lesion_boxes: list[tuple[int, int, int, int]] = field(default_factory=list)


@dataclass
class Corpus:
    root: Path
    tokens: list[str]
    files: list[CorpusFile]
    malformed: list[str]

    def write_labels(self, path: Path) -> None:
        """labels.csv keyed by accession number, in the phantom export's format (one row per lesion)."""
        lines = [
            "accession_number,sop_instance_uid,frame,pathology,birads,box_x0,box_y0,box_x1,box_y1"
        ]
        for f in self.files:
            birads = {"normal": 1, "benign": 3, "malignant": 5}[f.pathology]
            for box in f.lesion_boxes or [("", "", "", "")]:
                lines.append(
                    ",".join(str(v) for v in (f.accession, f.sop_uid, 0, f.pathology, birads, *box))
                )
        Path(path).write_text("\n".join(lines) + "\n")


class _Tokens:
    """Hands out unique, greppable tokens, one per hiding place."""

    def __init__(self, seed: int) -> None:
        self.seed, self.all, self._uid = seed, [], 0

    def text(self, family: str) -> str:
        tok = f"ZQ{family[:6].upper()}{self.seed:02d}{len(self.all):03d}X"
        self.all.append(tok)
        return tok

    def uid(self) -> str:
        self._uid += 1
        uid = f"{UID_ROOT}.{self.seed}.{9000 + self._uid}"
        self.all.append(uid)
        return uid

    def date(self, year: int, month: int, day: int) -> str:
        d = f"{year:04d}{month:02d}{day:02d}"
        self.all.append(d)
        return d


def _frame(
    seed: int, pathology: str, tokens: _Tokens, text_inside: bool, boxes: list
) -> tuple[np.ndarray, list]:
    """One 600x800 screen: phantom image in the region, banner + footer (+ annotation) text."""
    ph = render_case(
        seed, pathology, "device-a", size=(REGION[3] - REGION[1] + 1, REGION[2] - REGION[0] + 1)
    )
    screen = np.zeros((ROWS, COLS), np.uint8)
    screen[REGION[1] : REGION[3] + 1, REGION[0] : REGION[2] + 1] = ph.image
    lesion_boxes = [
        (x0 + REGION[0], y0 + REGION[1], x1 + REGION[0], y1 + REGION[1])
        for x0, y0, x1, y1 in ph.boxes
    ]
    lines = [
        ((10, 30), f"{tokens.text('bname')} {tokens.text('bid')}", 0.7),
        ((10, 65), f"{tokens.text('binst')} {tokens.text('bdate')}", 0.6),
        ((10, 585), tokens.text("bfoot"), 0.5),
    ]
    if text_inside:
        lines.append(((REGION[0] + 30, REGION[1] + 60), tokens.text("bann"), 0.6))
    for org, text, scale in lines:
        glyphs = np.zeros_like(screen)
        cv2.putText(glyphs, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, 255, 1, cv2.LINE_AA)
        screen = np.maximum(screen, glyphs)
        ys, xs = np.nonzero(glyphs)
        boxes.append((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    return screen, lesion_boxes


def _header(
    tokens: _Tokens, patient: dict, study_uid: str, accession: str, study_date: str, sop_class: str
) -> Dataset:
    ds = Dataset()
    sop_uid = tokens.uid()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = tokens.uid()
    ds.file_meta.SourceApplicationEntityTitle = tokens.text("srcae")[:16]
    ds.file_meta.SendingApplicationEntityTitle = tokens.text("sndae")[:16]
    ds.file_meta.ReceivingApplicationEntityTitle = tokens.text("rcvae")[:16]
    ds.preamble = tokens.text("preamble").encode().ljust(128, b"\x00")
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, tokens.uid()
    ds.FrameOfReferenceUID = tokens.uid()
    ds.Modality = "US"
    ds.ImageType = ["ORIGINAL", "PRIMARY", tokens.text("imgtype")[:16]]
    ds.PatientName = patient["name"]
    ds.PatientID = patient["id"]
    ds.PatientBirthDate = patient["birth"]
    ds.PatientSex = "F"
    ds.PatientAge = "047Y"
    ds.PatientAddress = tokens.text("address")
    ds.PatientTelephoneNumbers = tokens.text("phone")
    ds.OtherPatientIDs = tokens.text("otherid")
    ds.AdditionalPatientHistory = tokens.text("history") + " palpable lump"
    ds.AccessionNumber = accession
    ds.StudyID = tokens.text("studyid")[:16]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_date
    ds.StudyTime = "101502"
    ds.ReferringPhysicianName = tokens.text("refphys")
    ds.PerformingPhysicianName = tokens.text("perfphys")
    ds.OperatorsName = tokens.text("operator")
    ds.InstitutionName = tokens.text("institution")
    ds.InstitutionAddress = tokens.text("instaddr")
    ds.InstitutionalDepartmentName = tokens.text("dept")
    ds.StationName = tokens.text("station")[:16]
    ds.Manufacturer = "PhantomVendor"
    ds.ManufacturerModelName = "PV-100"
    ds.DeviceSerialNumber = tokens.text("serial")
    ds.SoftwareVersions = tokens.text("software")
    ds.StudyDescription = f"US BREAST LEFT {tokens.text('studydesc')}"
    ds.SeriesDescription = f"{tokens.text('seriesdesc')} BREAST"
    ds.ImageComments = f"lesion seen {tokens.text('comment')}"
    ds.BodyPartExamined = "BREAST"
    ds.Laterality = "L"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    # Nested sequences, two levels deep.
    req = Dataset()
    req.RequestedProcedureID = tokens.text("reqproc")
    req.ScheduledProcedureStepID = tokens.text("sps")
    ref = Dataset()
    ref.ReferencedSOPClassUID = US_IMAGE
    ref.ReferencedSOPInstanceUID = tokens.uid()
    req.ReferencedStudySequence = Sequence([ref])
    ds.RequestAttributesSequence = Sequence([req])
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator = "T-04000", "SRT"
    code.CodeMeaning = f"Breast {tokens.text('codemean')}"
    ds.AnatomicRegionSequence = Sequence([code])
    # Private tags, overlay, curve, icon image.
    ds.add_new(0x00090010, "LO", tokens.text("privcreator"))
    ds.add_new(0x00091001, "LO", tokens.text("privvalue"))
    ds.add_new(0x00091002, "UN", tokens.text("privun").encode())
    ds.add_new(0x60000010, "US", 16)
    ds.add_new(0x60000011, "US", 16)
    ds.add_new(0x60000022, "LO", tokens.text("overlay"))
    ds.add_new(0x60003000, "OW", tokens.text("ovldata").encode().ljust(32, b"\x00"))
    ds.add_new(0x50000022, "LO", tokens.text("curve"))
    icon = Dataset()
    icon.Rows = icon.Columns = 8
    icon.add_new(0x7FE00010, "OB", tokens.text("icon").encode().ljust(64, b"\x00"))
    ds.IconImageSequence = Sequence([icon])
    return ds


def _pixels(ds: Dataset, frames: list[np.ndarray], colour: bool, jpeg: bool) -> None:
    ds.Rows, ds.Columns = ROWS, COLS
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if len(frames) > 1:
        ds.NumberOfFrames = len(frames)
        ds.FrameTime = "33.3"
        ds.add_new(0x00280009, "AT", 0x00181063)
    if not colour:
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.PixelData = np.stack(frames).tobytes()
        return
    rgb = [np.stack([f, f, (f * 0.9).astype(np.uint8)], axis=-1) for f in frames]
    ds.SamplesPerPixel, ds.PlanarConfiguration = 3, 0
    if not jpeg:
        ds.PhotometricInterpretation = "RGB"
        ds.PixelData = np.stack(rgb).tobytes()
        return
    params = [
        cv2.IMWRITE_JPEG_QUALITY,
        95,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
        cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
    ]
    encoded = [cv2.imencode(".jpg", f[..., ::-1], params)[1].tobytes() for f in rgb]
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.LossyImageCompression = "01"
    ds.PixelData = encapsulate(encoded)
    ds["PixelData"].VR = "OB"


def _regions(ds: Dataset) -> None:
    item = Dataset()
    item.RegionSpatialFormat, item.RegionDataType, item.RegionFlags = 1, 1, 0
    item.RegionLocationMinX0, item.RegionLocationMinY0 = REGION[0], REGION[1]
    item.RegionLocationMaxX1, item.RegionLocationMaxY1 = REGION[2], REGION[3]
    item.PhysicalUnitsXDirection = item.PhysicalUnitsYDirection = 3
    item.PhysicalDeltaX = item.PhysicalDeltaY = 0.01
    ds.SequenceOfUltrasoundRegions = Sequence([item])


VARIANTS = (
    # name,          colour, jpeg,  frames, regions, text inside region, pathology
    ("grey", False, False, 1, True, False, "benign"),
    ("grey-annot", False, False, 1, True, True, "malignant"),
    ("rgb", True, False, 1, True, True, "benign"),
    ("ybr-jpeg", True, True, 1, False, False, "malignant"),
    ("cine", False, False, 3, True, True, "benign"),
    ("no-regions", False, False, 1, False, True, "normal"),
)


def build_corpus(root: Path, seed: int = 0) -> Corpus:
    """Write the corpus under `root` (an export folder); returns its tokens and ground truth."""
    root = Path(root)
    tokens = _Tokens(seed)
    files: list[CorpusFile] = []
    patient_a = {
        "name": f"{tokens.text('pname')}^JANE",
        "id": tokens.text("pid"),
        "birth": tokens.date(1971, 2, 3),
    }
    for k, (_name, colour, jpeg, n_frames, regions, inside, pathology) in enumerate(VARIANTS):
        patient = (
            patient_a
            if k < 2
            else {
                "name": f"{tokens.text('pname')}^ANN",
                "id": tokens.text("pid"),
                "birth": tokens.date(1960 + k, 5, 6),
            }
        )
        # Patient A has two studies 30 days apart, to check the interval survives date shifting.
        study_uid, accession = tokens.uid(), tokens.text("acc")[:16]
        study_date = tokens.date(2021, 3, 1 + 30 * k) if k < 2 else tokens.date(2022, 1 + k, 9)
        sop_class = US_MULTIFRAME if n_frames > 1 else US_IMAGE
        ds = _header(tokens, patient, study_uid, accession, study_date, sop_class)
        text_boxes: list = []
        frames, lesion_boxes = [], []
        for _ in range(n_frames):
            boxes: list = []
            frame, lesion_boxes = _frame(seed * 100 + k, pathology, tokens, inside, boxes)
            frames.append(frame)
            text_boxes.extend(boxes)
        _pixels(ds, frames, colour, jpeg)
        if regions:
            _regions(ds)
        ds.BurnedInAnnotation = "YES" if k % 2 else "NO"  # sometimes wrong, as in the wild
        folder = root / f"{tokens.text('folder')}_{patient['id']}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{patient['name'].replace('^', '_')}_{tokens.text('file')}.dcm"
        ds.save_as(path, enforce_file_format=False)
        files.append(
            CorpusFile(
                str(path),
                patient["id"],
                study_uid,
                str(ds.SOPInstanceUID),
                accession,
                study_date,
                text_boxes,
                regions,
                colour,
                n_frames,
                pathology,
                lesion_boxes,
            )
        )
    malformed = _write_malformed(root, tokens, patient_a)
    corpus = Corpus(root, tokens.all, files, malformed)
    (root.parent / f"{root.name}-truth.json").write_text(
        json.dumps(
            {"tokens": corpus.tokens, "malformed": malformed, "files": [f.__dict__ for f in files]},
            indent=1,
        )
    )
    return corpus


def _write_malformed(root: Path, tokens: _Tokens, patient: dict) -> list[str]:
    """Inputs that must be quarantined: each still full of tokens, none may reach the output."""
    bad = root / f"{tokens.text('baddir')}"
    bad.mkdir(parents=True, exist_ok=True)
    paths = []

    def base() -> Dataset:
        ds = _header(tokens, patient, tokens.uid(), tokens.text("acc")[:16], "20200101", US_IMAGE)
        boxes: list = []
        frame, _ = _frame(7, "benign", tokens, False, boxes)
        _pixels(ds, [frame], False, False)
        return ds

    # Truncated in the middle of the pixel data.
    path = bad / f"{tokens.text('trunc')}.dcm"
    base().save_as(path, enforce_file_format=True)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - ROWS * COLS // 2])
    paths.append(str(path))
    # No pixel data.
    ds = base()
    del ds.PixelData
    path = bad / f"{tokens.text('nopix')}.dcm"
    ds.save_as(path, enforce_file_format=True)
    paths.append(str(path))
    # Wrong VR for a standard attribute (Rows written as a long string).
    ds = base()
    del ds.Rows
    ds.add_new(0x00280010, "LO", tokens.text("wrongvr"))
    path = bad / f"{tokens.text('badvr')}.dcm"
    ds.save_as(path, enforce_file_format=True)
    paths.append(str(path))
    # Not DICOM at all.
    path = bad / f"{tokens.text('notdicom')}.txt"
    path.write_text(f"patient {patient['name']} {patient['id']} {tokens.text('notes')}\n")
    paths.append(str(path))
    return paths


def write_sample(
    path: Path,
    seed: int,
    colour: bool = False,
    jpeg: bool = False,
    regions: bool = True,
    frames: int = 1,
) -> None:
    """One 800x600 PACS-like file with planted PHI (for benchmarks and quick checks)."""
    tokens = _Tokens(seed)
    patient = {
        "name": f"{tokens.text('pname')}^JANE",
        "id": tokens.text("pid"),
        "birth": tokens.date(1970, 1, 1),
    }
    ds = _header(
        tokens,
        patient,
        tokens.uid(),
        tokens.text("acc")[:16],
        "20240102",
        US_MULTIFRAME if frames > 1 else US_IMAGE,
    )
    images = [_frame(seed, "benign", tokens, True, [])[0] for _ in range(frames)]
    _pixels(ds, images, colour, jpeg)
    if regions:
        _regions(ds)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=False)
