"""Catalog download benchmark: aggregate throughput and latency of concurrent bundle downloads.

Starts the real `busgen-server serve` (uvicorn, TLS) on 127.0.0.1 with one published bundle of
synthetic-looking images, then downloads it with 1, 2, 4 and 8 concurrent clients (a fixed
number of downloads per level, so the run is bounded). Writes `result.json` and `throughput.png`
into the output directory. Figures are ratios against the single-client run of the same process.

    .venv/bin/python -m bench.catalog_bench --out bench/out/catalog_bench
"""

from __future__ import annotations

import argparse
import hashlib
import json
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from common.release.bundle import write_bundle
from common.release.signing import add_trusted_key, generate_signing_key
from server.catalog import Catalog, TokenStore
from server.provision import init_ca


def _bundle(work: Path, n: int, size: int) -> tuple[Path, Path]:
    key = generate_signing_key(work / "k.pem", work / "k.pub", work / "k.pass")
    trust = work / "trust.json"
    add_trusted_key(trust, "bench-site", work / "k.pub")
    rng = np.random.default_rng(0)
    images = [
        np.clip(rng.gamma(2.0, 40.0, (size, size)), 0, 255).astype(np.uint8) for _ in range(n)
    ]
    rows = [{"pathology": "benign", "birads": 3, "device": "bench", "box": [8, 8, 24, 24]}] * n
    bundle = write_bundle(
        work / "bundle",
        images,
        rows,
        "# bench\n",
        {"summary": {}},
        "<html></html>",
        {"site_id": "bench-site", "dataset_id": "bench"},
        key,
    )
    return bundle, trust


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/out/catalog_bench"))
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--downloads", type=int, default=16, help="downloads per concurrency level")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        bundle, trust = _bundle(work, args.images, args.size)
        catalog = Catalog(work / "catalog")
        entry = catalog.publish(bundle, trust)
        _, token = TokenStore(catalog.tokens_file).add("bench")
        pki = init_ca(work / "pki")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from server.cli import main; main()",
                "serve",
                "--catalog",
                str(catalog.root),
                "--cert",
                str(pki.server_cert),
                "--key",
                str(pki.server_key),
                "--port",
                str(port),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            url = f"https://127.0.0.1:{port}"
            ctx = ssl.create_default_context(cafile=str(pki.ca_cert))
            auth = {"Authorization": f"Bearer {token}"}
            for _ in range(150):
                try:
                    httpx.get(f"{url}/healthz", verify=ctx, timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.2)
            terms = httpx.get(f"{url}/api/v1/terms", headers=auth, verify=ctx).json()
            httpx.post(
                f"{url}/api/v1/terms/accept",
                headers=auth,
                verify=ctx,
                json={"version": terms["version"]},
            ).raise_for_status()

            def one(_: int) -> tuple[float, bool]:
                start = time.perf_counter()
                r = httpx.get(
                    f"{url}/api/v1/releases/{entry['release_id']}/bundle.tar",
                    headers=auth,
                    verify=ctx,
                    timeout=60,
                )
                ok = (
                    r.status_code == 200
                    and hashlib.sha256(r.content).hexdigest() == entry["archive"]["sha256"]
                )
                return time.perf_counter() - start, ok

            levels = []
            for clients in (1, 2, 4, 8):
                start = time.perf_counter()
                with ThreadPoolExecutor(clients) as pool:
                    results = list(pool.map(one, range(args.downloads)))
                wall = time.perf_counter() - start
                latencies = sorted(r[0] for r in results)
                levels.append(
                    {
                        "clients": clients,
                        "downloads": args.downloads,
                        "errors": sum(not r[1] for r in results),
                        "wall_s": wall,
                        "throughput_mb_s": args.downloads * entry["archive"]["size"] / wall / 1e6,
                        "latency_median_s": statistics.median(latencies),
                        "latency_max_s": latencies[-1],
                    }
                )
        finally:
            proc.terminate()
            proc.wait(timeout=10)

    base = levels[0]["throughput_mb_s"]
    for level in levels:
        level["throughput_ratio_vs_1_client"] = level["throughput_mb_s"] / base
    result = {
        "archive_bytes": entry["archive"]["size"],
        "images": args.images,
        "size": args.size,
        "levels": levels,
    }
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.5))
    clients = [lv["clients"] for lv in levels]
    ax[0].plot(clients, [lv["throughput_ratio_vs_1_client"] for lv in levels], "o-")
    ax[0].set(
        xlabel="concurrent clients", ylabel="throughput / 1 client", title="aggregate throughput"
    )
    ax[1].plot(clients, [lv["latency_median_s"] for lv in levels], "o-", label="median")
    ax[1].plot(clients, [lv["latency_max_s"] for lv in levels], "s--", label="max")
    ax[1].set(xlabel="concurrent clients", ylabel="seconds per download", title="latency")
    ax[1].legend()
    fig.suptitle(
        f"catalog downloads over TLS, {entry['archive']['size'] / 1e6:.1f} MB bundle, loopback"
    )
    fig.tight_layout()
    fig.savefig(args.out / "throughput.png", dpi=100)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
