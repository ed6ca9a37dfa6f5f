"""PHI scan of what a release would publish: text in the pixels, text in the files.

Pixels: a model that memorised a frame with a burned-in banner can reproduce the banner, so
every released image is searched for text. Native-size frames (>= 256 px) go through the
de-identification detector (`client.deid.text`). Release images are small (32-128 px), where
that detector's stroke-scale parameters do not apply and speckle produces false alarms, so
small images use a detector tuned for them: burned-in text is drawn at full brightness with
sharp strokes, while the B-mode grey levels of the training data and of its synthetic copies
stay below ~235 (log compression); we look for near-saturated, top-hat-sharp pixels that form
a line of at least four separate glyphs (three bright specks in a row occur in speckle) that
stands out from the rest of the image: an under-trained generator can saturate its speckle
everywhere, and near-saturated specks then line up by chance (in a cpu-demo run, 40 % of one
site's candidates were dropped for that before this concentration test).

Files: PNG text chunks (tEXt/zTXt/iTXt), EXIF and timestamps are reported, and metadata rows
may carry only the bundle's label fields with values from a fixed vocabulary.
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterable, Sequence

import cv2
import numpy as np

from client.deid.text import detect_text
from common.store import PATHOLOGIES

Box = tuple[int, int, int, int]

SMALL_IMAGE = 256
BRIGHT_LEVEL = 235  # grey level of burned-in strokes (B-mode tissue stays below)
TOPHAT_KERNEL = 7  # wider than a stroke at 32-128 px
TOPHAT_CONTRAST = 50  # a stroke stands this far above its surroundings
MIN_GLYPHS = 4  # 3 bright specks in a row occur in speckle and calcifications
MIN_DENSITY = 0.15
MIN_CONCENTRATION = 8.0  # a text line is this many times denser in strokes than the rest

ALLOWED_FIELDS = {"file_name", "pathology", "birads", "device", "box"}
ALLOWED_CHUNKS = {
    b"IHDR",
    b"PLTE",
    b"IDAT",
    b"IEND",
    b"tRNS",
    b"gAMA",
    b"sRGB",
    b"pHYs",
    b"cHRM",
    b"sBIT",
}
PHI_PATTERNS = {
    "date": re.compile(
        r"\b(19|20)\d\d[-/.]?[01]\d[-/.]?[0-3]\d\b|\b[0-3]?\d[/.][01]?\d[/.](19|20)?\d\d\b"
    ),
    "long number (ID-like)": re.compile(r"\d{6,}"),
    "DICOM UID": re.compile(r"\b\d+(\.\d+){4,}\b"),
}


def detect_text_small(image: np.ndarray) -> list[Box]:
    """Boxes of burned-in text in a small (32-255 px) grey image; see the module docstring."""
    img = np.ascontiguousarray(
        image if image.dtype == np.uint8 else np.clip(image, 0, 255).astype(np.uint8)
    )
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (TOPHAT_KERNEL, TOPHAT_KERNEL))
    tophat = cv2.morphologyEx(img, cv2.MORPH_TOPHAT, kernel)
    strokes = ((tophat >= TOPHAT_CONTRAST) & (img >= BRIGHT_LEVEL)).astype(np.uint8)
    if not strokes.any():
        return []
    total = int(strokes.sum())
    joined = cv2.dilate(strokes, cv2.getStructuringElement(cv2.MORPH_RECT, (3, 1)))
    n, _, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    boxes = []
    for i in range(1, n):
        x, y, w, h, _ = (int(v) for v in stats[i])
        if h < 3 or h > max(3, img.shape[0] // 3) or w < 1.5 * h:
            continue
        sub = strokes[y : y + h, x : x + w]
        if sub.mean() < MIN_DENSITY:
            continue
        if cv2.connectedComponents(sub, connectivity=8)[0] - 1 < MIN_GLYPHS:
            continue
        rest = (total - sub.sum()) / max(1, img.size - h * w)
        if sub.mean() < MIN_CONCENTRATION * rest:
            continue  # saturated speckle all over the image, not a line of text
        boxes.append((x, y, x + w, y + h))
    return boxes


def find_text(image: np.ndarray) -> list[Box]:
    """Text boxes in one image, with the detector that suits its size."""
    if min(image.shape[:2]) >= SMALL_IMAGE:
        return detect_text(image)
    return detect_text_small(image)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, payload) of every chunk of a PNG file."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG file")
    chunks, pos = [], 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        chunks.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
        if kind == b"IEND":
            break
    return chunks


def scan_png(data: bytes) -> list[str]:
    """Findings for one PNG: any ancillary chunk that can carry text, times or EXIF."""
    findings = []
    for kind, payload in png_chunks(data):
        if kind in ALLOWED_CHUNKS:
            continue
        text = ""
        if kind == b"tEXt":
            text = payload.decode("latin-1", "replace")
        elif kind == b"zTXt":
            key, _, rest = payload.partition(b"\0")
            text = (
                key.decode("latin-1") + "=" + zlib.decompress(rest[1:]).decode("latin-1", "replace")
            )
        elif kind == b"iTXt":
            text = payload.decode("utf-8", "replace")
        findings.append(
            f"PNG chunk {kind.decode('latin-1')}" + (f": {text[:40]!r}" if text else "")
        )
    return findings


def scan_rows(rows: Sequence[dict], devices: Iterable[str]) -> list[str]:
    """Findings for metadata rows: unexpected fields, out-of-vocabulary or ID-like values."""
    devices = set(devices)
    findings = []
    for i, row in enumerate(rows):
        extra = sorted(set(row) - ALLOWED_FIELDS)
        if extra:
            findings.append(f"row {i}: unexpected field(s) {', '.join(extra)}")
        if row.get("pathology") not in PATHOLOGIES:
            findings.append(f"row {i}: pathology {row.get('pathology')!r} not in {PATHOLOGIES}")
        if row.get("device") not in devices:
            findings.append(f"row {i}: device {row.get('device')!r} is not a configured device")
        birads = row.get("birads")
        if birads is not None and not (isinstance(birads, int) and 1 <= birads <= 6):
            findings.append(f"row {i}: birads {birads!r} is not 1-6 or null")
        box = row.get("box")
        if box is not None and not (
            len(box) == 4 and all(isinstance(v, (int, float)) for v in box)
        ):
            findings.append(f"row {i}: box {box!r} is not four numbers or null")
        for key, value in row.items():
            if isinstance(value, str):
                for name, pattern in PHI_PATTERNS.items():
                    if pattern.search(value):
                        findings.append(f"row {i}: field {key} looks like a {name}")
    return findings


def phi_scan(
    images: Sequence[np.ndarray],
    png_files: Sequence[bytes],
    rows: Sequence[dict],
    devices: Iterable[str],
) -> dict:
    """The audit's PHI section. Per-image results go into `flagged_images` (indices of the
    candidate release, which are synthetic: no patient value)."""
    text_hits = [i for i, img in enumerate(images) if find_text(np.asarray(img))]
    file_findings = [f"image {i}: {f}" for i, data in enumerate(png_files) for f in scan_png(data)]
    row_findings = scan_rows(rows, devices)
    return {
        "text_detector": (
            "client.deid.text (frames >= 256 px); small-image detector: "
            f"strokes >= {BRIGHT_LEVEL} grey, top-hat >= {TOPHAT_CONTRAST}, "
            f">= {MIN_GLYPHS} glyphs on a line"
        ),
        "n_images": len(images),
        "images_with_text": len(text_hits),
        "flagged_images": text_hits,
        "png_metadata_findings": file_findings,
        "metadata_row_findings": row_findings,
        "passed": not (text_hits or file_findings or row_findings),
    }
