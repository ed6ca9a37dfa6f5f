"""Environment for every Flower process the project starts (SuperLink, SuperNode, flwr CLI).

Hospitals run these machines without internet: no telemetry, no update checks, no runtime
`uv sync` of dependencies, and Flower's state (FLWR_HOME) inside the project's work directory
rather than the user's home.
"""

from __future__ import annotations

import os
from pathlib import Path


def flower_env(flwr_home: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """Return a copy of `base` (default: os.environ) with Flower's hygiene variables set."""
    env = dict(os.environ if base is None else base)
    flwr_home = Path(flwr_home).resolve()
    flwr_home.mkdir(parents=True, exist_ok=True)
    env.update(
        {
            "FLWR_HOME": str(flwr_home),
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
            "RAY_TMPDIR": str(flwr_home / "ray"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def apply_flower_env(flwr_home: Path) -> None:
    """Set the hygiene variables in this process (before importing flwr)."""
    os.environ.update(flower_env(flwr_home))
