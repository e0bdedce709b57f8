"""What produced a result: Python, platform, package versions and the git commit.

Every run folder and study writes this as ``versions.json`` so a number can be traced to code.
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

CORE_PACKAGES = ("recfuse", "torch", "numpy", "pandas", "scipy", "scikit-learn", "transformers")


def git_commit() -> str:
    """The checkout's HEAD commit, or ``"unknown"`` outside a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False,
            cwd=Path(__file__).parent, timeout=10,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() or "unknown"


def package_versions(extra: Iterable[str] = ()) -> dict[str, str]:
    """Versions of the core packages plus ``extra`` ones ("not installed" when absent)."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in dict.fromkeys([*CORE_PACKAGES, *extra]):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["git_commit"] = git_commit()
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch_threads"] = str(torch.get_num_threads())
    return out
