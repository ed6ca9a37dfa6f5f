"""Phantom simulator benchmark: images per second per core, and a picture of what it draws.

    .venv/bin/python bench/phantom_bench.py [--n 200] [--size 128]

Writes bench/out/phantom/result.json (throughput per device at SIZE x SIZE on one thread, and
store throughput including PNG + index writes), bench/out/phantom/grid.png (examples per class x
device at native size) and copies the grid to docs/phantom-grid.png for the README.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import cv2
from PIL import Image, ImageDraw

from simulation.phantom import DEVICES, render_case, simulate_store

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "phantom"
COLUMNS = (
    ("normal", None),
    ("benign", "cyst"),
    ("benign", "fibroadenoma"),
    ("malignant", "carcinoma-spiculated"),
    ("malignant", "carcinoma-irregular"),
)


def throughput(n: int, size: int) -> dict[str, float]:
    """Images rendered per second on one core, per device (mixed classes)."""
    result = {}
    for device in sorted(DEVICES):
        render_case(0, "benign", device, size)  # warm-up
        start = time.perf_counter()
        for i in range(n):
            render_case(i, ("normal", "benign", "malignant")[i % 3], device, size)
        result[device] = n / (time.perf_counter() - start)
    return result


def store_throughput(patients: int) -> dict[str, float]:
    """End-to-end simulate_store rate (render at native size + PNG + fsynced index)."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        store = simulate_store(tmp, "bench", "device-a", patients, seed=0)
        seconds = time.perf_counter() - start
        return {"images": len(store), "images_per_s": len(store) / seconds}


def example_grid(seed: int = 3) -> Image.Image:
    """Rows: devices; columns: normal, cyst, fibroadenoma, spiculated and irregular carcinoma
    (the first seed giving that kind), lesion boxes outlined, captioned with kind and BI-RADS."""
    tiles_h, tiles_w = 200, 240
    label_w = 80
    sheet = Image.new(
        "RGB", (label_w + tiles_w * len(COLUMNS), 24 + tiles_h * len(DEVICES)), "white"
    )
    draw = ImageDraw.Draw(sheet)
    for j, (pathology, _) in enumerate(COLUMNS):
        draw.text((label_w + j * tiles_w + 6, 6), pathology, fill="black")
    for i, device in enumerate(sorted(DEVICES)):
        draw.text((6, 24 + i * tiles_h + tiles_h // 2), device, fill="black")
        for j, (pathology, kind) in enumerate(COLUMNS):
            s = seed * 1000 + i * 100
            img = render_case(s, pathology, device)
            while kind and img.lesions[0].kind != kind:
                s += 1
                img = render_case(s, pathology, device)
            rgb = img.rgb()
            for x0, y0, x1, y1 in img.boxes:
                cv2.rectangle(rgb, (x0, y0), (x1 - 1, y1 - 1), (255, 200, 0), 1)
            kinds = ",".join(s.kind for s in img.lesions) or "-"
            tile = Image.fromarray(rgb)
            tile.thumbnail((tiles_w - 8, tiles_h - 20))
            x, y = label_w + j * tiles_w + 4, 24 + i * tiles_h
            sheet.paste(tile, (x, y))
            draw.text((x, y + tile.height + 2), f"{kinds[:28]} B{img.birads}", fill="black")
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="images per device for the timing")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--store-patients", type=int, default=40)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # per-core figures

    OUT.mkdir(parents=True, exist_ok=True)
    rates = throughput(args.n, args.size)
    store = store_throughput(args.store_patients)
    result = {
        "size": args.size,
        "n_per_device": args.n,
        "threads": 1,
        "images_per_s_per_core": rates,
        "min_images_per_s_per_core": min(rates.values()),
        "target_images_per_s_per_core": 20.0,
        "ratio_to_target": min(rates.values()) / 20.0,
        "simulate_store_native": store,
        "machine": platform.processor() or platform.machine(),
    }
    (OUT / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    grid = example_grid()
    grid.save(OUT / "grid.png")
    (ROOT / "docs").mkdir(exist_ok=True)
    shutil.copyfile(OUT / "grid.png", ROOT / "docs" / "phantom-grid.png")
    _plot(rates)
    print(json.dumps(result, indent=2))


def _plot(rates: dict[str, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3))
    ax.bar(list(rates), list(rates.values()), color="#4a7")
    ax.axhline(20.0, color="k", linestyle="--", label="target 20/s/core")
    ax.set_ylabel("images / s / core (128 px)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(OUT / "throughput.png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
