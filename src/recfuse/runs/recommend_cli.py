"""`recfuse recommend`, `recfuse export` and `recfuse models`: use a trained run, no server."""

from __future__ import annotations

from pathlib import Path

import typer

from recfuse.errors import DataError


def recommend(
    run: Path = typer.Option(..., "--run", help="Run folder (or saved model folder)."),
    user: str | None = typer.Option(None, "--user", help="Raw user id, e.g. 196."),
    history: str | None = typer.Option(
        None, "--history", help='Raw item ids, oldest first, e.g. "50 172 133" (a new user).'
    ),
    k: int = typer.Option(10, "-k", help="Items to recommend."),
) -> None:
    """Top-K items for one user in raw ids, with titles and scores (its history masked)."""
    from recfuse.runs.load import load_run

    if user is None and history is None:
        raise DataError("give --user, --history or both")
    model = load_run(run)
    items = history.split() if history is not None else None
    recs = model.recommend_raw(user, k, history=items)
    who = f"user {user}" if user is not None else f"a new user with {len(items or [])} items"
    typer.echo(f"{model.name} ({run}): top {len(recs)} for {who}")
    width = max([len(str(r.item_id)) for r in recs] + [7])
    typer.echo(f"{'rank':>4}  {'item_id':<{width}}  {'score':>10}  title")
    for r in recs:
        typer.echo(f"{r.rank:>4}  {str(r.item_id):<{width}}  {r.score:>10.4f}  {r.title}")


def export(
    run: Path = typer.Option(..., "--run", help="Run folder (or saved model folder)."),
    k: int = typer.Option(100, "-k", help="Items per user."),
    out: Path = typer.Option(..., "--out", help="Parquet file to write."),
    batch_users: int = typer.Option(1024, help="Users scored per chunk."),
    threads: int | None = typer.Option(None, help="torch threads"),
) -> None:
    """Every user's top-K (user_id, rank, item_id, score) to Parquet, chunked."""
    import torch

    from recfuse.runs.export import export_topk
    from recfuse.runs.load import load_run

    if threads:
        torch.set_num_threads(threads)
    model = load_run(run)
    stats = export_topk(model, out, k=k, batch_users=batch_users)
    typer.echo(f"{model.name}: {stats.line()} -> {out}")


def models() -> None:
    """Every model with its parameters and defaults (and the shared training settings)."""
    from recfuse.runs.model_help import models_text

    typer.echo(models_text())
