"""Vendor-like scanner profiles.

Real breast scanners differ in ways a model can latch on to: the transducer's centre frequency
sets the speckle grain, the beam sets the lateral resolution (best at the focus, worse above and
below), the post-processing sets the dynamic range, gain and grey map, and the screen layout sets
image geometry, size, tint and the markers drawn over the image. Three fictitious profiles cover
those axes so cross-device generalisation can be studied. Names are used by configs
(`device-a`, `device-b`, `device-c`); nothing here imitates a real vendor's trademarked layout.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.errors import DataError


@dataclass(frozen=True)
class DeviceProfile:
    """How one scanner model forms and displays a B-mode image."""

    name: str
    manufacturer: str  # fictitious, written into DICOM Manufacturer
    model: str  # fictitious, written into ManufacturerModelName
    probe: str  # probe label shown on screen
    centre_mhz: float  # sets attenuation and the axial pulse length
    axial_res_mm: float  # -6 dB pulse length (speckle grain in depth)
    lateral_res_mm: float  # -6 dB beam width at the focus (speckle grain across)
    depth_mm: float  # imaging depth
    width_mm: float  # field of view at the bottom of the image
    top_width_frac: float  # 1.0: linear (rectangle); <1: trapezoid (virtual convex)
    native_size: tuple[int, int]  # (rows, cols) of the scan area as stored
    dynamic_range_db: float  # log-compression window
    gain_db: float  # overall gain
    gamma: float  # grey map: >1 darkens mid-greys, <1 lifts them
    tint: tuple[float, float, float]  # RGB grey-map tint of the screen
    smoothing_px: float  # speckle-reduction filter strength (0: none)
    marker_side: str  # "left" or "right": depth ruler and focus marker
    orientation_mark: str  # "dot", "square" or "ring": the probe-orientation mark
    banner_style: str  # layout of the burned-in PACS banner (see simulation.phantom.dicom)


DEVICES: dict[str, DeviceProfile] = {
    # High-frequency linear probe: fine speckle, wide dynamic range, neutral grey.
    "device-a": DeviceProfile(
        name="device-a",
        manufacturer="Sonalis Medical",
        model="Sonalis A9",
        probe="L14-5",
        centre_mhz=11.0,
        axial_res_mm=0.30,
        lateral_res_mm=0.55,
        depth_mm=38.0,
        width_mm=38.0,
        top_width_frac=1.0,
        native_size=(176, 176),
        dynamic_range_db=62.0,
        gain_db=0.0,
        gamma=1.0,
        tint=(1.0, 1.0, 1.0),
        smoothing_px=0.0,
        marker_side="right",
        orientation_mark="dot",
        banner_style="left",
    ),
    # Lower-frequency probe in a virtual-convex (trapezoid) mode: coarse speckle, high contrast,
    # bright gain, warm sepia grey map.
    "device-b": DeviceProfile(
        name="device-b",
        manufacturer="Meridian Imaging",
        model="Meridian UX-5",
        probe="VF8-3",
        centre_mhz=7.0,
        axial_res_mm=0.50,
        lateral_res_mm=1.00,
        depth_mm=45.0,
        width_mm=52.0,
        top_width_frac=0.72,
        native_size=(192, 224),
        dynamic_range_db=50.0,
        gain_db=3.0,
        gamma=0.9,
        tint=(1.0, 0.93, 0.80),
        smoothing_px=0.0,
        marker_side="left",
        orientation_mark="square",
        banner_style="centre",
    ),
    # Mid-frequency wide linear probe with speckle reduction: smooth texture, flat (wide) grey
    # map, darker gain, cool tint, wider than deep.
    "device-c": DeviceProfile(
        name="device-c",
        manufacturer="Hakuto Diagnostics",
        model="Hakuto HX-70",
        probe="12L-RS",
        centre_mhz=9.0,
        axial_res_mm=0.38,
        lateral_res_mm=0.75,
        depth_mm=34.0,
        width_mm=46.0,
        top_width_frac=1.0,
        native_size=(160, 208),
        dynamic_range_db=70.0,
        gain_db=-2.0,
        gamma=1.25,
        tint=(0.90, 0.96, 1.0),
        smoothing_px=0.8,
        marker_side="right",
        orientation_mark="ring",
        banner_style="right",
    ),
}


def get_device(name: str) -> DeviceProfile:
    """Look a profile up by name, with an error that lists the known ones."""
    try:
        return DEVICES[name]
    except KeyError:
        raise DataError(
            f"unknown phantom device {name!r}; known: {', '.join(sorted(DEVICES))}"
        ) from None
