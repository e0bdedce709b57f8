"""What a run folder records besides results: the command's config and the package versions."""

from __future__ import annotations

import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from recfuse.atomic import write_json

PACKAGES = ("recfuse", "numpy", "pandas", "scipy", "scikit-learn", "torch", "rdkit", "transformers")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages an audit depends on ("absent" when missing)."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def write_run_config(folder: str | Path, config: dict[str, Any]) -> None:
    """``config.json`` (the inputs) and ``versions.json`` in ``folder``, atomically."""
    folder = Path(folder)
    write_json(folder / "config.json", config)
    write_json(folder / "versions.json", package_versions())
