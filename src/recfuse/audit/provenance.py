"""What a run folder records besides results: the command's config and the package versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recfuse.atomic import write_json
from recfuse.provenance import package_versions as shared_versions

PACKAGES = ("recfuse", "numpy", "pandas", "scipy", "scikit-learn", "torch", "rdkit", "transformers")


def package_versions() -> dict[str, str]:
    """Installed versions of the packages an audit depends on, plus the git commit."""
    return shared_versions(PACKAGES)


def write_run_config(folder: str | Path, config: dict[str, Any]) -> None:
    """``config.json`` (the inputs) and ``versions.json`` in ``folder``, atomically."""
    folder = Path(folder)
    write_json(folder / "config.json", config)
    write_json(folder / "versions.json", package_versions())
