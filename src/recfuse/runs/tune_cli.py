"""`recfuse tune CONFIG --trials N --space SPACE.yaml`."""

from __future__ import annotations

from pathlib import Path

import typer


def tune(
    config: Path = typer.Argument(..., help="YAML run config to tune."),
    space: Path = typer.Option(..., "--space", help="YAML search space (see docs)."),
    trials: int = typer.Option(20, "--trials", help="Trials to finish in total (resumes)."),
    out: Path | None = typer.Option(None, "--out", help="Search folder (default runs/tune-NAME)."),
    set_: list[str] = typer.Option([], "--set", help="Override a config key first."),
) -> None:
    """Optuna TPE search on validation NDCG@10, median pruning per epoch; writes best.yaml."""
    from recfuse.runs.tune import tune as run_tune

    result = run_tune(config, space, trials, out, set_)
    typer.echo(result.line())
