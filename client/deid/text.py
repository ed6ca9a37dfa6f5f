"""Burned-in text detection for ultrasound frames (OpenCV morphology + connected components).

Scanners burn the patient's name, ID, dates and institution into a banner, and operators type
annotations inside the image. Text differs from speckle in three ways this detector uses:

1. Strokes are thin, bright and sharp: a white top-hat (and black-hat, for dark text on a light
   label) at stroke scale responds strongly, while speckle, blurred by the point-spread
   function, responds weakly except at rare isolated grains.
2. Characters sit side by side on a line with similar heights: joining candidate pixels
   horizontally turns a word into one wide, short component, whereas speckle grains join into
   blobs with no consistent height, or not at all.
3. A word is made of several separate strokes (characters): counting sub-components rejects a
   single bright reflector or a specular line.

Every parameter is a pixel size in a frame, so the detector runs on the frame as stored (no
resizing). It returns boxes in (x0, y0, x1, y1) half-open pixel coordinates, padded by a margin so
the antialiased edges of the glyphs are blanked too.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class TextDetectorParams:
    stroke_kernel: int = 15  # top-hat window: wider than any stroke, narrower than a word
    min_contrast: int = 60  # grey levels a stroke stands above its surroundings
    dark_level: int = 16  # a box is "on a blank field" when this share of its ...
    dark_fraction: float = 0.75  # ... non-stroke pixels is at or below this grey level
    bright_floor: int = 200  # over tissue, strokes must be at least this bright ...
    bright_percentile: float = 99.8
    bright_margin: int = 8  # ... and above that percentile of the frame by this much
    min_height: int = 5  # smallest glyph height we look for (pixels)
    max_height: int = 90  # tallest line of text (pixels)
    join_width: int = 11  # horizontal gap bridged between characters
    min_density: float = 0.08  # stroke pixels / box area of a word on a blank field
    tissue_glyphs: int = 2  # separate bright glyphs a word over tissue must show
    tissue_density: float = 0.05  # bright stroke pixels / box area of a word over tissue
    margin: int = 4  # padding around each blanked box on a blank field
    tissue_margin: int = 2  # ... and over tissue (the strokes were found at full contrast)


def to_gray8(frame: np.ndarray) -> np.ndarray:
    """One uint8 channel: the max over colour channels, so coloured text is as bright as white."""
    if frame.ndim == 3:
        frame = frame.max(axis=2)
    if frame.dtype != np.uint8:
        hi = float(frame.max()) or 1.0
        frame = (frame.astype(np.float32) * (255.0 / hi)).astype(np.uint8)
    return np.ascontiguousarray(frame)


def _glyphs(mask: np.ndarray) -> int:
    return cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] - 1


def _wordlike(strokes: np.ndarray, w: int, h: int, min_glyphs: int = 2) -> bool:
    """A word has about one glyph per character width and each glyph about a glyph-height of
    stroke pixels; a skin line or an edge is one long stroke, a bright echo a few pixels."""
    if int(np.count_nonzero(strokes)) < 3 * h:
        return False
    return _glyphs(strokes) >= max(min_glyphs, int(0.3 * w / max(h, 1)))


def _lines(strokes: np.ndarray, p: TextDetectorParams):
    """Candidate words/lines: stroke pixels joined horizontally, with plausible text geometry."""
    joined = cv2.dilate(strokes, cv2.getStructuringElement(cv2.MORPH_RECT, (p.join_width, 3)))
    n, _, stats, _ = cv2.connectedComponentsWithStats(joined, connectivity=8)
    for i in range(1, n):
        x, y, w, h, _ = (int(v) for v in stats[i])
        if p.min_height <= h <= p.max_height + 2 and w >= max(4, h // 2):
            yield x, y, w, h


def detect_text(frame: np.ndarray, params: TextDetectorParams | None = None) -> list[Box]:
    """Boxes around burned-in text in one frame (grey or RGB, any integer dtype)."""
    p = params or TextDetectorParams()
    gray = to_gray8(frame)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (p.stroke_kernel, p.stroke_kernel))
    white = cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, kernel)
    black = cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, kernel)
    strokes = ((white >= p.min_contrast) | (black >= p.min_contrast + 40)).astype(np.uint8)
    if not strokes.any():
        return []
    found: list[tuple[int, int, int, int, int]] = []  # x, y, w, h, margin
    # 1. Text on an empty field (banner, annotation outside the sector): any sharp structure of
    #    glyph size whose surroundings are blank.
    for x, y, w, h in _lines(strokes, p):
        sub = strokes[y : y + h, x : x + w].astype(bool)
        background = gray[y : y + h, x : x + w][~sub]
        if (
            sub.mean() >= p.min_density
            and _wordlike(sub, w, h)
            and (background.size == 0 or np.mean(background <= p.dark_level) >= p.dark_fraction)
        ):
            found.append((x, y, w, h, p.margin))
    # 2. Text over tissue: only strokes brighter than (nearly) all of the echo texture count, so
    #    speckle does not merge with the glyphs; a word then shows several separate glyphs.
    level = max(p.bright_floor, int(np.percentile(gray, p.bright_percentile)) + p.bright_margin)
    bright = (strokes.astype(bool) & (gray >= min(level, 250))).astype(np.uint8)
    if bright.any():
        for x, y, w, h in _lines(bright, p):
            sub = bright[y : y + h, x : x + w]
            if sub.mean() >= p.tissue_density and _wordlike(sub, w, h, p.tissue_glyphs):
                found.append((x, y, w, h, p.tissue_margin))
    h_img, w_img = gray.shape
    return [
        (max(0, x - m), max(0, y - m), min(w_img, x + w + m), min(h_img, y + h + m))
        for x, y, w, h, m in found
    ]


def blank_boxes(frame: np.ndarray, boxes: list[Box], value: int = 0) -> None:
    """Set every box to `value` in place (all channels)."""
    for x0, y0, x1, y1 in boxes:
        frame[y0:y1, x0:x1] = value
