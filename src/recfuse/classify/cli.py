"""`recfuse classify ...`: hierarchical genre prediction (HiGeMine)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__.splitlines()[0])


@app.callback()
def classify() -> None:
    """Hierarchical genre classification (HiGeMine)."""


@app.command()
def genres(
    dataset: str = typer.Option(..., help="goodreads-books or booklyn-books"),
    out: Path | None = typer.Option(
        None,
        help="Parquet file to write (default: $RECFUSE_CACHE/classify/<dataset>-genres.parquet)",
    ),
    model: str = typer.Option("minilm", help="Frozen encoder (minilm or a local model folder)."),
    method: str = typer.Option(
        "higemine", help="higemine, hier_nograph, flat_mlp, flat_logreg, tfidf_logreg"
    ),
    folds: int = typer.Option(5, help="Cross-fitting folds (author-disjoint)."),
    seed: int = typer.Option(0),
    threads: int = typer.Option(1, help="torch threads"),
    limit: int | None = typer.Option(None, help="Use the first rows only (smoke runs)."),
) -> None:
    """Train on the labeled books and write predicted genres into an item-feature table."""
    import torch

    from recfuse.classify.item_genres import crossfit_genres, write_item_genres
    from recfuse.classify.pipeline import METHODS, load_corpus
    from recfuse.data.locate import cache_root
    from recfuse.errors import ConfigError

    if dataset not in ("goodreads-books", "booklyn-books"):
        raise ConfigError(f"--dataset must be goodreads-books or booklyn-books, not {dataset!r}")
    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, not {method!r}")
    torch.set_num_threads(threads)
    corpus = load_corpus(dataset, model, limit)
    table, report = crossfit_genres(corpus, method, folds, seed)
    target = out or cache_root() / "classify" / f"{dataset}-genres.parquet"
    write_item_genres(table, report, target)
    s = report["out_of_fold_scores"]
    typer.echo(
        f"{dataset}: {len(table)} books -> {target}; out-of-fold on {report['labeled_books']} "
        f"labeled: L1 acc {s['l1_acc']:.3f}, L2 micro F1 {s['l2_micro_f1']:.3f}, "
        f"macro F1 {s['l2_macro_f1']:.3f}, hF1 {s['h_f1']:.3f}"
    )
