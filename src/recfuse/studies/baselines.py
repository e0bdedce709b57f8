"""Baselines study: every baseline under leave-one-out full ranking, on any dataset."""

from __future__ import annotations

import time

import numpy as np
import torch
import typer

from recfuse.data import load_dataset
from recfuse.evaluation import Evaluator
from recfuse.models import BPR, EASE, GRU4Rec, ItemKNN, Pop, Recommender, SASRec, TrainConfig
from recfuse.runs import Experiment, RunFolder, metrics_markdown
from recfuse.split import make_split

# sequence length per dataset: MovieLens histories are long, the others short
MAX_LEN = {"ml-100k": 200}


def baseline_models(
    dataset: str,
    seed: int,
    max_seconds: float | None,
    valid_users: int | None,
    device: str = "cpu",
) -> list[Recommender]:
    max_len = MAX_LEN.get(dataset, 50)

    def train(**kw: object) -> TrainConfig:
        return TrainConfig(  # type: ignore[arg-type]
            seed=seed, max_seconds=max_seconds, valid_users=valid_users, device=device, **kw
        )

    return [
        Pop(),
        ItemKNN(k=100),
        EASE(l2=500.0),
        BPR(train=train(epochs=200, batch_size=4096, lr=5e-3, patience=10)),
        SASRec(
            max_len=max_len,
            loss="ce",
            train=train(epochs=200, batch_size=128, lr=1e-3, patience=10),
        ),
        SASRec(
            max_len=max_len,
            loss="sampled",
            negatives=256,
            train=train(epochs=200, batch_size=128, lr=1e-3, patience=10),
        ),
        GRU4Rec(max_len=max_len, train=train(epochs=200, batch_size=128, lr=1e-3, patience=10)),
    ]


def main(
    dataset: str = typer.Option("ml-100k", help="Dataset name."),
    seed: int = typer.Option(0),
    max_seconds: float = typer.Option(1200.0, help="Training-time budget per neural model (s)."),
    valid_users: int = typer.Option(5000, help="Validation users used for early stopping."),
    threads: int = typer.Option(2),
    out: str = typer.Option("runs", help="Folder for the run folder."),
    device: str = typer.Option("cpu", help="cpu, cuda or auto."),
    models: str = typer.Option("", help="Comma-separated subset of model names (default: all)."),
) -> None:
    """Every baseline (Pop, ItemKNN, EASE, BPR, SASRec CE/sampled, GRU4Rec), LOO full ranking."""
    torch.set_num_threads(threads)
    data = load_dataset(dataset)
    split = make_split(data, "leave_one_out", seed=seed)
    chosen = baseline_models(dataset, seed, max_seconds, valid_users, device)
    if models:
        wanted = {m.strip().lower() for m in models.split(",")}
        chosen = [m for m in chosen if m.name.lower() in wanted]
    with RunFolder(out, f"baselines-{dataset}") as run:
        run.write_config(
            {
                "study": "baselines",
                "dataset": dataset,
                "seed": seed,
                "max_seconds": max_seconds,
                "valid_users": valid_users,
                "threads": threads,
                "split": "leave_one_out",
                "device": device,
                "models": {m.name: m.get_params() for m in chosen},
            }
        )
        split.save(run.path / "split")
        started = time.perf_counter()
        table = Experiment(split, chosen, Evaluator(split, progress=True)).run(run)
        table.insert(0, "dataset", dataset)
        for r, m in zip(table.index, chosen, strict=True):
            table.loc[r, "epochs"] = len(getattr(m, "history_", [])) or np.nan
        run.write_text("table.md", metrics_markdown(table.to_dict("records")))
        run.log(f"total {time.perf_counter() - started:.0f}s")
        print(table.to_string(index=False))
    print(f"run folder: {run.path}")
