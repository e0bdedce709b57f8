"""`recfuse eval compare RUN_A RUN_B`: paired significance between two runs' per-user results."""

from __future__ import annotations

from pathlib import Path

import typer

from recfuse.errors import RecfuseError

app = typer.Typer(no_args_is_help=True)


def _per_user(run: Path) -> Path:
    files = sorted(run.glob("per_user_test_*.parquet"))
    if len(files) != 1:
        raise RecfuseError(f"{run}: expected one per_user_test_*.parquet, found {len(files)}")
    return files[0]


@app.command()
def compare(
    run_a: Path,
    run_b: Path,
    metric: list[str] = typer.Option(["NDCG@10", "Recall@10"], help="Metrics to test."),
) -> None:
    """Paired t-test and Wilcoxon test on the users both runs evaluated."""
    import pandas as pd

    from recfuse.evaluation.significance import paired_test

    a, b = pd.read_parquet(_per_user(run_a)), pd.read_parquet(_per_user(run_b))
    for m in metric:
        typer.echo(paired_test(a, b, m).line())


@app.command()
def show(run: Path) -> None:
    """Print a run's metrics table and slices."""
    for name in ("metrics.md", *sorted(p.name for p in run.glob("slices_*.md"))):
        path = run / name
        if not path.is_file():
            raise RecfuseError(f"{path}: not found (is {run} a run folder?)")
        typer.echo(path.read_text())
