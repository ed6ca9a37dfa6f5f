"""Breast lesions described with the BI-RADS ultrasound lexicon, and drawn into tissue maps.

A lesion is a shape (a radius function around an ellipse), an internal echo pattern, a margin and
a posterior feature. The posterior features are not painted on: they come from the lesion's
attenuation, accumulated with depth by the B-mode model, exactly as in a scanner (fluid attenuates
little, so the tissue behind a cyst is brighter; a desmoplastic carcinoma attenuates strongly and
casts a shadow).

Kinds and their lexicon descriptors (the BI-RADS category follows from them):

| kind | shape / orientation | margin | echo pattern | posterior | BI-RADS |
|---|---|---|---|---|---|
| cyst | round/oval, parallel | circumscribed | anechoic | enhancement, edge shadows | 2 |
| fibroadenoma | oval, parallel (<=3 gentle lobulations) | circumscribed | hypoechoic | none/slight enhancement | 3 |
| complex-benign | oval, parallel | microlobulated | hypoechoic, heterogeneous | none | 4 |
| carcinoma-circumscribed | round/oval, not parallel | circumscribed/indistinct | hypoechoic, heterogeneous | enhancement | 4 |
| carcinoma-irregular | irregular, not parallel | angular, indistinct, echogenic halo | hypoechoic, heterogeneous | shadowing | 4-5 |
| carcinoma-spiculated | irregular, taller than wide | spiculated, echogenic halo | hypoechoic, calcifications | shadowing | 5 |

The atypical kinds (complex-benign, carcinoma-circumscribed) keep the task honest: morphology
predicts pathology well, not perfectly, as in real practice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from simulation.phantom.anatomy import Anatomy, Grid, smooth_field

BENIGN_KINDS = (("cyst", 0.35), ("fibroadenoma", 0.50), ("complex-benign", 0.15))
MALIGNANT_KINDS = (
    ("carcinoma-spiculated", 0.50),
    ("carcinoma-irregular", 0.35),
    ("carcinoma-circumscribed", 0.15),
)


@dataclass(frozen=True)
class LesionSpec:
    """One lesion's morphology, in millimetres and dB; a patient keeps it across views."""

    kind: str
    pathology: str
    birads: int
    width_mm: float
    height_mm: float
    tilt_deg: float
    harmonics: tuple[tuple[int, float, float], ...]  # (order, relative amplitude, phase)
    echo_db: float
    heterogeneity_db: float
    margin_soft: float  # margin blur as a fraction of the radius
    attenuation: float  # dB/cm/MHz inside the lesion
    depth_frac: float  # 0 = top of the fibroglandular zone, 1 = its bottom
    lateral_frac: float  # -1..1 across the field of view
    vertices: tuple[float, ...] = ()  # angular polygon radii; () = smooth
    spicules: tuple[
        tuple[float, float, float], ...
    ] = ()  # (angle rad, rel. length, half-width rad)
    halo_db: float = 0.0  # echogenic halo level (only if halo_width > 0)
    halo_width: float = 0.0  # as a fraction of the radius
    edge_shadows: bool = False  # refraction shadows under the lateral margins
    calcifications: int = 0


def _pick(rng: np.random.Generator, table) -> str:
    names, weights = zip(*table)
    return str(rng.choice(names, p=np.asarray(weights) / sum(weights)))


def _harmonics(rng, orders, amp) -> tuple[tuple[int, float, float], ...]:
    return tuple(
        (int(k), float(rng.uniform(0.3, 1.0) * amp), float(rng.uniform(0, 2 * np.pi)))
        for k in orders
    )


def sample_lesion(rng: np.random.Generator, pathology: str) -> LesionSpec:
    """Draw a lesion whose morphology fits `pathology` ("benign" or "malignant")."""
    kind = _pick(rng, BENIGN_KINDS if pathology == "benign" else MALIGNANT_KINDS)
    common = dict(
        depth_frac=float(rng.uniform(0.2, 0.8)),
        lateral_frac=float(rng.uniform(-0.4, 0.4)),
        kind=kind,
        pathology=pathology,
    )
    if kind == "cyst":
        w = rng.uniform(5.0, 16.0)
        return LesionSpec(
            **common,
            birads=2,
            width_mm=w,
            height_mm=w * rng.uniform(0.55, 0.95),
            tilt_deg=rng.uniform(-10, 10),
            harmonics=_harmonics(rng, [2, 3], 0.03),
            echo_db=-50.0,
            heterogeneity_db=0.0,
            margin_soft=0.015,
            attenuation=0.05,
            edge_shadows=True,
        )
    if kind == "fibroadenoma":
        w = rng.uniform(7.0, 22.0)
        return LesionSpec(
            **common,
            birads=3,
            width_mm=w,
            height_mm=w * rng.uniform(0.45, 0.75),
            tilt_deg=rng.uniform(-12, 12),
            harmonics=_harmonics(rng, [2, 3], 0.07),
            echo_db=rng.uniform(-21.0, -15.0),
            heterogeneity_db=1.5,
            margin_soft=0.02,
            attenuation=rng.uniform(0.35, 0.6),
            edge_shadows=rng.uniform() < 0.5,
        )
    if kind == "complex-benign":
        w = rng.uniform(7.0, 18.0)
        return LesionSpec(
            **common,
            birads=4,
            width_mm=w,
            height_mm=w * rng.uniform(0.55, 0.9),
            tilt_deg=rng.uniform(-20, 20),
            harmonics=_harmonics(rng, [2, 3], 0.06) + _harmonics(rng, [9, 11, 13], 0.035),
            echo_db=rng.uniform(-22.0, -16.0),
            heterogeneity_db=3.0,
            margin_soft=0.04,
            attenuation=rng.uniform(0.5, 0.9),
        )
    if kind == "carcinoma-circumscribed":
        w = rng.uniform(7.0, 18.0)
        return LesionSpec(
            **common,
            birads=4,
            width_mm=w,
            height_mm=w * rng.uniform(0.8, 1.15),
            tilt_deg=rng.uniform(-25, 25),
            harmonics=_harmonics(rng, [2, 3, 5], 0.06),
            echo_db=rng.uniform(-30.0, -24.0),
            heterogeneity_db=3.5,
            margin_soft=0.06,
            attenuation=rng.uniform(0.2, 0.45),
        )
    # Irregular and spiculated carcinomas: angular polygon outline, taller than wide, halo, shadow.
    spiculated = kind == "carcinoma-spiculated"
    w = rng.uniform(6.0, 18.0)
    n_vert = int(rng.integers(5, 10))
    vertices = tuple(float(v) for v in rng.uniform(0.55, 1.25, n_vert))
    spicules = ()
    if spiculated:
        n_sp = int(rng.integers(6, 14))
        spicules = tuple(
            (float(a), float(rng.uniform(0.5, 1.1)), float(rng.uniform(0.05, 0.09)))
            for a in rng.uniform(0, 2 * np.pi, n_sp)
        )
    return LesionSpec(
        **common,
        vertices=vertices,
        spicules=spicules,
        calcifications=int(rng.integers(0, 6)) if spiculated else 0,
        birads=5 if spiculated or rng.uniform() < 0.5 else 4,
        width_mm=w,
        height_mm=w * rng.uniform(1.0, 1.6),
        tilt_deg=rng.uniform(-30, 30),
        harmonics=_harmonics(rng, [3, 7, 11, 15], 0.07),
        echo_db=rng.uniform(-32.0, -25.0),
        heterogeneity_db=4.0,
        margin_soft=rng.uniform(0.04, 0.10),
        halo_db=rng.uniform(2.0, 6.0),
        halo_width=rng.uniform(0.15, 0.35),
        attenuation=rng.uniform(0.8, 1.5),
    )


def view_of(spec: LesionSpec, rng: np.random.Generator) -> LesionSpec:
    """The same lesion seen in another image: the probe moved and turned a little."""
    scale = rng.uniform(0.9, 1.1)
    return replace(
        spec,
        width_mm=spec.width_mm * scale * rng.uniform(0.92, 1.08),
        height_mm=spec.height_mm * scale,
        tilt_deg=spec.tilt_deg + rng.uniform(-8, 8),
        depth_frac=float(np.clip(spec.depth_frac + rng.uniform(-0.1, 0.1), 0, 1)),
        lateral_frac=float(np.clip(spec.lateral_frac + rng.uniform(-0.15, 0.15), -0.5, 0.5)),
    )


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2 * np.pi) - np.pi


def draw_lesion(
    rng: np.random.Generator,
    spec: LesionSpec,
    grid: Grid,
    anatomy: Anatomy,
    echo: np.ndarray,
    att: np.ndarray,
    label: int,
    mask: np.ndarray,
    max_width_mm: float,
) -> None:
    """Paint `spec` into `echo` and `att` in place and label its core `label` in `mask`."""
    a, b = spec.width_mm / 2, spec.height_mm / 2
    reach = max(a, b) * (
        1.0 + max([s[1] for s in spec.spicules], default=0) + spec.halo_width + 0.3
    )

    # Centre: inside the fibroglandular zone, fully inside the field of view.
    xc = float(
        np.clip(
            spec.lateral_frac * max_width_mm / 2,
            -max_width_mm / 2 + a + 1,
            max_width_mm / 2 - a - 1,
        )
    )
    col = int(np.clip((xc + grid.width_mm / 2) / grid.dx, 0, grid.cols - 1))
    top, bottom = float(anatomy.gland_top[col]), float(anatomy.gland_bottom[col])
    zc = top + spec.depth_frac * max(bottom - top, 0.0)
    zc = float(np.clip(zc, 2.5 + b, grid.depth_mm * 0.78 - b))

    r0 = max(0, int((zc - reach) / grid.dz))
    r1 = min(grid.rows, int((zc + reach) / grid.dz) + 2)
    c0 = max(0, int((xc - reach + grid.width_mm / 2) / grid.dx))
    c1 = min(grid.cols, int((xc + reach + grid.width_mm / 2) / grid.dx) + 2)
    z = grid.z()[r0:r1] - zc
    x = grid.x()[:, c0:c1] - xc
    phi = np.deg2rad(spec.tilt_deg)
    u = x * np.cos(phi) + z * np.sin(phi)
    v = -x * np.sin(phi) + z * np.cos(phi)
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2)
    theta = np.arctan2(v / b, u / a)

    radius = np.ones_like(rho)
    for k, amp, ph in spec.harmonics:
        radius += amp * np.cos(k * theta + ph)
    if spec.vertices:
        n = len(spec.vertices)
        knots = np.linspace(-np.pi, np.pi, n + 1)
        radius *= np.interp(theta, knots, np.append(spec.vertices, spec.vertices[0]))
    spike = np.zeros_like(rho)
    for ang, length, half in spec.spicules:
        spike = np.maximum(spike, length * np.clip(1 - np.abs(_wrap(theta - ang)) / half, 0, 1))

    soft = max(spec.margin_soft, 1e-3)
    inside = 0.5 + 0.5 * np.tanh((radius - rho) / (2 * soft))
    spic = np.clip((radius * (1 + spike) - rho) / 0.02, 0, 1) * (rho > radius) * (spike > 0)
    body = np.maximum(inside, 0.9 * spic)

    tex = smooth_field(rng, rho.shape, (2.0, 2.0)) if spec.heterogeneity_db else 0.0
    lesion_echo = spec.echo_db + spec.heterogeneity_db * tex
    e = echo[r0:r1, c0:c1]
    t = att[r0:r1, c0:c1]
    if spec.halo_width > 0:
        outer = radius * (1 + spike) * (1 + spec.halo_width)
        halo = np.clip((outer - rho) / (radius * spec.halo_width), 0, 1) * (
            rho > radius * (1 + spike)
        )
        e += 0.8 * halo * (spec.halo_db - e)
    e += body * (lesion_echo - e)
    t += body * (spec.attenuation - t)
    if spec.edge_shadows:
        # Refraction at the curved lateral margins throws thin shadows straight down.
        rim = np.exp(-(((rho - radius) / 0.08) ** 2)) * (np.abs(np.cos(theta)) > 0.9)
        t += rim * 2.0
    core = rho < radius
    if spec.calcifications:
        rr, cc = np.nonzero(core)
        pick = rng.choice(len(rr), size=min(spec.calcifications, len(rr)), replace=False)
        e[rr[pick], cc[pick]] = 14.0

    mask[r0:r1, c0:c1][core] = label
