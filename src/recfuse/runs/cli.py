"""`recfuse run CONFIG.yaml [--set key=value ...]`."""

from __future__ import annotations

from pathlib import Path

import typer


def app(
    config: Path = typer.Argument(..., help="YAML run config (see configs/)."),
    set_: list[str] = typer.Option([], "--set", help="Override a key, e.g. --set train.epochs=5"),
) -> None:
    """Run one experiment from a YAML config and write its run folder."""
    from recfuse.runs.config import load_config
    from recfuse.runs.experiment import run_config

    run_config(load_config(config, set_))
