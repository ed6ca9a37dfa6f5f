"""Clean Pixel Data: decode every frame, blank outside the ultrasound regions, blank burned-in text.

Region masking alone fails when the regions are missing, when the sector is fan-shaped (text in
the corners of the bounding box) or when annotations sit inside the image, so the text detector
always runs on what the regions keep, in every frame of a cine loop. Compressed input (JPEG
baseline, often YBR_FULL_422) is decoded to RGB and written uncompressed, which is why the
caller gives the file a new SOP Instance UID anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset

from client.deid.header import MalformedInput
from client.deid.text import Box, blank_boxes, detect_text

# Regions that together cover less than this share of the frame are not trusted as "the image".
MIN_REGION_FRACTION = 0.05


@dataclass
class CleanPixels:
    """Decoded, cleaned frames and what was done to them (for the report)."""

    frames: np.ndarray  # [F, H, W] or [F, H, W, 3]
    photometric: str  # MONOCHROME1, MONOCHROME2 or RGB
    bits_stored: int
    regions: list[Box] = field(default_factory=list)  # half-open (x0, y0, x1, y1)
    text_boxes: int = 0  # total over frames
    text_boxes_by_frame: list[list[Box]] = field(default_factory=list)
    lossy_source: bool = False

    @property
    def image_box(self) -> Box:
        """Bounding box of the regions (the whole frame when there are none)."""
        if not self.regions:
            return (0, 0, self.frames.shape[2], self.frames.shape[1])
        xs0, ys0, xs1, ys1 = zip(*self.regions)
        return (min(xs0), min(ys0), max(xs1), max(ys1))


def decode_frames(ds: Dataset) -> tuple[np.ndarray, str, bool]:
    """All frames as [F,H,W(,3)] plus the photometric interpretation of the decoded array."""
    if "PixelData" not in ds:
        raise MalformedInput("no pixel data")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    lossy = (
        ds.file_meta.TransferSyntaxUID.is_compressed
        and (
            "JPEG" in ds.file_meta.TransferSyntaxUID.name
            and "Lossless" not in ds.file_meta.TransferSyntaxUID.name
        )
        or str(ds.get("LossyImageCompression", "")) == "01"
    )
    try:
        arr = ds.pixel_array
    except Exception as exc:  # truncated, wrong length, undecodable codestream, missing plugin
        raise MalformedInput("pixel data cannot be decoded", str(exc)) from exc
    samples = int(ds.get("SamplesPerPixel", 1))
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if samples == 3:
        out_photometric = "RGB"  # pydicom converts YBR_* to RGB when decoding
    elif photometric in ("MONOCHROME1", "MONOCHROME2"):
        out_photometric = photometric
    elif photometric == "PALETTE COLOR":
        from pydicom.pixels import apply_color_lut

        arr = apply_color_lut(arr, ds)
        out_photometric, samples = "RGB", 3
    else:
        raise MalformedInput("unsupported photometric interpretation", photometric)
    expected_ndim = 2 + (samples == 3)
    if arr.ndim == expected_ndim:
        arr = arr[None]
    if arr.ndim != expected_ndim + 1 or (frames > 1 and arr.shape[0] != frames):
        raise MalformedInput("pixel data shape does not match the header", str(arr.shape))
    return np.ascontiguousarray(arr), out_photometric, bool(lossy)


def ultrasound_regions(ds: Dataset, width: int, height: int) -> list[Box]:
    """SequenceOfUltrasoundRegions as half-open boxes clipped to the frame; [] if unusable."""
    boxes = []
    for item in ds.get("SequenceOfUltrasoundRegions", []):
        try:
            x0, y0 = int(item.RegionLocationMinX0), int(item.RegionLocationMinY0)
            x1, y1 = int(item.RegionLocationMaxX1) + 1, int(item.RegionLocationMaxY1) + 1
        except (AttributeError, TypeError, ValueError):
            continue
        x0, y0, x1, y1 = max(0, x0), max(0, y0), min(width, x1), min(height, y1)
        if x1 > x0 and y1 > y0:
            boxes.append((x0, y0, x1, y1))
    area = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes)
    return boxes if area >= MIN_REGION_FRACTION * width * height else []


def clean_pixels(ds: Dataset, detect: bool = True) -> CleanPixels:
    """Decode and clean every frame of `ds` (the source dataset; it is not modified)."""
    frames, photometric, lossy = decode_frames(ds)
    if not frames.flags.writeable:
        frames = frames.copy()
    bits = int(ds.get("BitsStored", 8))
    if photometric == "RGB" and frames.dtype != np.uint8:
        raise MalformedInput("unsupported colour bit depth", str(frames.dtype))
    height, width = frames.shape[1], frames.shape[2]
    blank = (1 << bits) - 1 if photometric == "MONOCHROME1" else 0
    regions = ultrasound_regions(ds, width, height)
    result = CleanPixels(
        frames, photometric, bits if photometric != "RGB" else 8, regions, lossy_source=lossy
    )
    if regions:
        kept = np.full_like(frames, blank)
        for x0, y0, x1, y1 in regions:
            kept[:, y0:y1, x0:x1] = frames[:, y0:y1, x0:x1]
        frames = result.frames = kept
    # With regions, look for text inside their bounding box only: the cut edge between image and
    # blanked surround would otherwise look like bright strokes on a blank field.
    x0, y0, x1, y1 = result.image_box
    for frame in frames:
        view = frame[y0:y1, x0:x1]
        boxes = detect_text(_as_dark_background(view, photometric, bits)) if detect else []
        boxes = [(bx0 + x0, by0 + y0, bx1 + x0, by1 + y0) for bx0, by0, bx1, by1 in boxes]
        blank_boxes(frame, boxes, blank)
        result.text_boxes_by_frame.append(boxes)
        result.text_boxes += len(boxes)
    return result


def _as_dark_background(frame: np.ndarray, photometric: str, bits: int) -> np.ndarray:
    """The detector expects bright-on-dark display; invert MONOCHROME1 for it."""
    return ((1 << bits) - 1) - frame if photometric == "MONOCHROME1" else frame


def write_pixels(out: Dataset, px: CleanPixels, multi_frame: bool) -> None:
    """Image Pixel module of the output, regenerated from the cleaned array (uncompressed)."""
    frames = px.frames
    colour = frames.ndim == 4
    out.SamplesPerPixel = 3 if colour else 1
    out.PhotometricInterpretation = px.photometric
    if colour:
        out.PlanarConfiguration = 0
    out.Rows, out.Columns = int(frames.shape[1]), int(frames.shape[2])
    if multi_frame or frames.shape[0] > 1:
        out.NumberOfFrames = int(frames.shape[0])
        if "FrameIncrementPointer" not in out:
            out.add_new(0x00280009, "AT", 0x00181063)
    bits_allocated = frames.dtype.itemsize * 8
    out.BitsAllocated = bits_allocated
    out.BitsStored = min(px.bits_stored, bits_allocated)
    out.HighBit = out.BitsStored - 1
    out.PixelRepresentation = 1 if frames.dtype.kind == "i" else 0
    data = frames.astype(frames.dtype.newbyteorder("<"), copy=False).tobytes()
    if len(data) % 2:
        data += b"\x00"
    out.add_new(0x7FE00010, "OB" if bits_allocated == 8 else "OW", data)
    if px.lossy_source:
        out.LossyImageCompression = "01"
