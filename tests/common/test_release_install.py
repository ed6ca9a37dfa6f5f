"""The researcher installs the core distribution only: `busgen-release` must work without torch,
opacus or flwr. Checked in a fresh virtual environment that installs this checkout with pip."""

from __future__ import annotations

import subprocess
import venv
from pathlib import Path

import pytest

from tests.common.test_bundle import make_bundle, make_signing

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("torch", "opacus", "flwr", "diffusers", "peft")


@pytest.fixture(scope="module")
def researcher_venv(tmp_path_factory) -> Path:
    env_dir = tmp_path_factory.mktemp("researcher") / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            f"{ROOT}[researcher]",
        ],
        check=True,
        timeout=900,
    )
    return env_dir


@pytest.mark.e2e
def test_researcher_install_has_no_heavy_dependencies(researcher_venv):
    python = researcher_venv / "bin" / "python"
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format", "freeze"], capture_output=True, text=True
    ).stdout.lower()
    installed = {line.split("==")[0] for line in listed.splitlines()}
    assert not installed & set(HEAVY), f"researcher install pulled {installed & set(HEAVY)}"
    assert "cryptography" in installed and "httpx" in installed


@pytest.mark.e2e
def test_researcher_tool_verifies_a_bundle_without_torch(researcher_venv, tmp_path):
    key, trust = make_signing(tmp_path)
    bundle = tmp_path / "release"
    make_bundle(bundle, key)
    tool = researcher_venv / "bin" / "busgen-release"

    ok = subprocess.run([tool, "verify", bundle, "--trust", trust], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert ": OK (10 files, 6 images, site site-a" in ok.stdout

    (bundle / "train" / "extra.png").write_bytes(b"not in the manifest")
    bad = subprocess.run([tool, "verify", bundle, "--trust", trust], capture_output=True, text=True)
    assert bad.returncode == 4 and "extra.png" in bad.stderr

    (bundle / "train" / "extra.png").unlink()
    load = subprocess.run(
        [
            researcher_venv / "bin" / "python",
            "-c",
            f"from common.release.loader import load_release; load_release({str(bundle)!r})",
        ],
        capture_output=True,
        text=True,
    )
    assert load.returncode != 0 and "needs PyTorch" in load.stderr
