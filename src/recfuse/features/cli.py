"""`recfuse features ...`: extract frozen-model layer features, caption items, list the store."""

from __future__ import annotations

import os

import typer

app = typer.Typer(no_args_is_help=True, help="Extract frozen-model item features.")


def _threads(threads: int | None) -> None:
    import torch

    torch.set_num_threads(threads or int(os.environ.get("OMP_NUM_THREADS", "1")))


@app.command()
def extract(
    model: str = typer.Option("minilm", help="minilm, smollm2 or a local model folder"),
    dataset: str = typer.Option("microlens-50k", help="dataset name"),
    template: str | None = typer.Option(None, help='item text template, e.g. "{title}"'),
    batch_size: int = typer.Option(32, help="texts per forward pass"),
    max_items: int | None = typer.Option(None, help="only the first N items (a subsample)"),
    max_length: int = typer.Option(128, help="tokens kept per item text"),
    chunk_items: int = typer.Option(1024, help="items per saved partial result"),
    threads: int | None = typer.Option(None, help="torch threads (default $OMP_NUM_THREADS or 1)"),
    folder: str | None = typer.Option(None, help="store root (default $RECFUSE_CACHE/features)"),
    device: str = typer.Option("cpu", help="torch device (cuda on a GPU machine)"),
) -> None:
    """Hidden states of every layer, mean- and last-token pooled, for every item; resumable."""
    from recfuse.features.extract import dataset_features
    from recfuse.features.store import FeatureStore

    _threads(threads)
    fset = dataset_features(
        dataset,
        model,
        template,
        FeatureStore(folder),
        max_items,
        batch_size=batch_size,
        max_length=max_length,
        chunk_items=chunk_items,
        device=device,
    )
    manifest = fset.manifest()
    typer.echo(
        f"{manifest['model']}: {manifest['n_layers']} layers x {len(manifest['poolings'])} "
        f"poolings, {manifest['n_items']} items x {manifest['dim']} -> {fset.folder}"
    )


@app.command()
def captions(
    dataset: str = typer.Option("amazon-scientific", help="dataset name"),
    llm: str = typer.Option("smollm2", help="the frozen captioning LLM"),
    encoder: str = typer.Option("minilm", help="the frozen encoder of the captions"),
    template: str | None = typer.Option(None, help="item text template"),
    max_items: int | None = typer.Option(None, help="caption only the first N items"),
    items_of_users: int | None = typer.Option(
        None, help="caption only the items of this many sampled users (the study's subsample)"
    ),
    seed: int = typer.Option(0, help="seed of the user sample"),
    max_tokens: int = typer.Option(32, help="caption length limit in tokens"),
    batch_size: int | None = typer.Option(
        None, help="prompts per generation batch (default 32 for ctranslate2, 8 otherwise)"
    ),
    threads: int | None = typer.Option(None, help="threads (default $OMP_NUM_THREADS or 1)"),
    folder: str | None = typer.Option(None, help="store root (default $RECFUSE_CACHE/features)"),
    device: str = typer.Option("cpu", help="torch device (cuda on a GPU machine)"),
    encode: bool = typer.Option(True, help="also encode the captions with the encoder"),
    backend: str = typer.Option(
        "auto",
        help="CPU LLM runtime: auto (ctranslate2 where installed), ctranslate2 (int8) or "
        "transformers (the float32 reference); each backend's captions are cached apart",
    ),
) -> None:
    """Describe each item with a frozen LLM (cached, resumable), then encode the captions."""
    from recfuse.features.captions import CPU_BACKENDS, caption_dataset

    if backend not in CPU_BACKENDS:
        raise typer.BadParameter(f"one of {', '.join(CPU_BACKENDS)}", param_hint="--backend")
    _threads(threads)
    result = caption_dataset(
        dataset,
        llm=llm,
        encoder=encoder,
        template=template,
        max_items=max_items,
        items_of_users=items_of_users,
        seed=seed,
        max_tokens=max_tokens,
        batch_size=batch_size,
        folder=folder,
        device=device,
        encode=encode,
        backend=backend,
        threads=threads,
    )
    typer.echo(result.summary())


@app.command(name="list")
def list_sets(
    folder: str | None = typer.Option(None, help="store root (default $RECFUSE_CACHE/features)"),
) -> None:
    """Every finished feature set (and unfinished ones that a rerun resumes)."""
    from recfuse.features.store import FeatureStore

    store = FeatureStore(folder)
    found = False
    for fset in store:
        m = fset.manifest()
        found = True
        typer.echo(
            f"{m['dataset']:<24} {m['model']:<10} layers={m['n_layers']:<3} dim={m['dim']:<5} "
            f"items={m['n_items']:<6} template={m['template']!r} text={m['text_hash']} "
            f"weights={m['weights_hash']}  {fset.folder}"
        )
    for path in store.unfinished():
        found = True
        done = len(list((path / "chunks").glob("chunk*.npy")))
        typer.echo(f"(unfinished, {done} chunks saved; rerun extract to resume) {path}")
    if not found:
        typer.echo(f"no feature sets under {store.root}")
