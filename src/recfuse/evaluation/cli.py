"""`recfuse eval show RUN` and `recfuse eval compare RUN_A RUN_B [RUN_C ...]`."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)


@app.command()
def compare(
    runs: list[str] = typer.Argument(
        ..., help="Run folders; the first is the baseline. RUN#MODEL picks a model of a study."
    ),
    model: str | None = typer.Option(None, help="Model to take from multi-model folders."),
    metric: list[str] = typer.Option(["NDCG@10", "Recall@10"], help="Metrics to test."),
) -> None:
    """Paired t-test and Wilcoxon of every run against the first, Holm-corrected.

    Refuses runs whose dataset, split or protocol (full vs sampled-N) differ: their users and
    targets do not pair.
    """
    from recfuse.evaluation.run_results import compare_runs

    typer.echo(compare_runs(runs, model, metric))


@app.command()
def show(run: Path, model: str | None = typer.Option(None, help="Only this model.")) -> None:
    """Every metric and K a run computed (valid and test), and slice tables per model."""
    from recfuse.evaluation.run_results import show_run

    typer.echo(show_run(run, model))
