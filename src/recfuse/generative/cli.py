"""`recfuse generative ...`: make semantic IDs, and run the SmolLM2 LoRA stage on them.

The full comparison (CEMG vs text-only IDs vs random codes vs SASRec) is `recfuse study cemg`.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from recfuse.atomic import atomic_path, write_json
from recfuse.errors import ConfigError

app = typer.Typer(no_args_is_help=True, help=__doc__.splitlines()[0] if __doc__ else None)

KINDS = ("cemg", "text", "random")


def _threads(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


@app.command()
def tokenize(
    dataset: str = typer.Option("amazon-scientific", help="Dataset name."),
    kind: str = typer.Option("cemg", help="cemg | text | random."),
    out: Path = typer.Option(Path("runs/semantic_ids"), help="Folder for codes and summary."),
    seed: int = typer.Option(0),
    steps: int = typer.Option(1500, help="RQ-VAE optimizer steps."),
    max_seconds: float = typer.Option(0, help="Stop the tokenizer after this long (0: no cap)."),
    collab_model: str = typer.Option("sasrec", help="sasrec | bpr (training split only)."),
    collab_seconds: float = typer.Option(0, help="Time cap of the collaborative model (0: none)."),
    levels: int = typer.Option(3),
    codebook_size: int = typer.Option(0, help="K per level (0: chosen from the catalogue)."),
    text_features: str = typer.Option("", help="Optional .npy [n_items, d] instead of MiniLM."),
    device: str = typer.Option("cpu"),
    threads: int = typer.Option(1),
) -> None:
    """Semantic IDs for a dataset: codes.npy (one unique code row per item) and summary.json."""
    from recfuse.data import load_dataset
    from recfuse.features.embed import item_text_vectors
    from recfuse.generative.collaborative import collaborative_embeddings
    from recfuse.generative.semantic_ids import (
        TokenizerConfig,
        fit_semantic_ids,
        random_semantic_ids,
    )
    from recfuse.split import make_split

    if kind not in KINDS:
        raise ConfigError(f"--kind {kind!r} is not one of {', '.join(KINDS)}")
    _threads(threads)
    split = make_split(load_dataset(dataset), "leave_one_out", 0)
    cfg = TokenizerConfig(
        levels=levels,
        codebook_size=codebook_size or None,
        steps=steps,
        max_seconds=max_seconds or None,
        seed=seed,
        device=device,
        progress=True,
    )
    if kind == "random":
        ids = random_semantic_ids(split.n_items, levels, codebook_size or None, seed)
    else:
        features = item_text_vectors(dataset, text_features or None)
        collab = None
        if kind == "cemg":
            collab, _ = collaborative_embeddings(
                split, collab_model, seed=seed, max_seconds=collab_seconds or None, progress=True
            )
        ids = fit_semantic_ids({"text": features}, collab, cfg)
    folder = out / f"{dataset}-{kind}-seed{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(folder / "codes.npy") as tmp, tmp.open("wb") as fh:
        np.save(fh, ids.codes)
    write_json(folder / "summary.json", ids.summary())
    typer.echo(json.dumps(ids.summary(), indent=2))
    typer.echo(f"codes: {folder / 'codes.npy'}")


@app.command()
def lm(
    dataset: str = typer.Option("amazon-office", help="Dataset name."),
    codes: Path = typer.Option(..., help="codes.npy from `recfuse generative tokenize`."),
    steps: int = typer.Option(20, help="LoRA optimizer steps."),
    batch_size: int = typer.Option(8),
    max_users: int = typer.Option(200, help="Train on this many users (0: all)."),
    eval_users: int = typer.Option(200, help="Evaluate on this many test users (0: all)."),
    max_seconds: float = typer.Option(0, help="Time cap of the fine-tuning (0: none)."),
    device: str = typer.Option("auto", help="auto | cpu | cuda."),
    out: Path = typer.Option(Path("runs/lm_stage"), help="Folder for the metrics."),
    seed: int = typer.Option(0),
    threads: int = typer.Option(1),
) -> None:
    """Fine-tune SmolLM2-135M-Instruct with LoRA to generate item codes; evaluate on test users."""
    from recfuse.data import load_dataset
    from recfuse.evaluation import Evaluator
    from recfuse.generative.lm_stage import CodeLM, LMStageConfig
    from recfuse.split import make_split

    _threads(threads)
    split = make_split(load_dataset(dataset), "leave_one_out", 0)
    cfg = LMStageConfig(
        steps=steps,
        batch_size=batch_size,
        max_users=max_users or None,
        max_seconds=max_seconds or None,
        device=device,
        seed=seed,
    )
    model = CodeLM(np.load(codes, allow_pickle=False), cfg).fit(split)
    users = None
    if eval_users:
        candidates = np.unique(split.test["user"].to_numpy())
        users = np.random.default_rng(seed).choice(
            candidates, min(eval_users, len(candidates)), replace=False
        )
    result = Evaluator(split, ks=(10,), users=users, batch_users=32).evaluate(model, "test")
    trainable, total = model.trainable_parameters()
    report = {
        "dataset": dataset,
        "codes": str(codes),
        "config": {k: v for k, v in vars(cfg).items() if k != "losses"},
        "loss_first": cfg.losses[0],
        "loss_last": cfg.losses[-1],
        "train_seconds": model.train_seconds_,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "device": str(model.device),
        "test_users": int(result.metrics["users"]),
        "Recall@10": result.metrics["Recall@10"],
        "NDCG@10": result.metrics["NDCG@10"],
        "inference_seconds": result.seconds,
    }
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / f"{dataset}-seed{seed}.json", report)
    typer.echo(json.dumps(report, indent=2, default=str))
