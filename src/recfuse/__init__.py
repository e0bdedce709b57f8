"""recfuse: frozen foundation models for recommender systems."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load_run"]


def __getattr__(name: str) -> Any:
    # imported on first use: `import recfuse` (and `recfuse --help`) stays free of torch
    if name == "load_run":
        from recfuse.runs.load import load_run

        return load_run
    raise AttributeError(f"module 'recfuse' has no attribute {name!r}")
