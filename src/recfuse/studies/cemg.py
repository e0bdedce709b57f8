"""`recfuse study cemg`: CEMG vs text-only semantic IDs vs random codes vs SASRec (full CE).

For each seed, on one leave-one-out split of the dataset:

- ``sasrec``: SASRec trained with full cross-entropy (the baseline TIGER-style papers tend to
  undertrain);
- ``cemg``: collaborative embeddings (SASRec on the training split only) guide a gated fusion of
  the MiniLM text features, trained jointly with an RQ-VAE; a code transformer generates the next
  item's code, decoded with a trie;
- ``text``: TIGER-style semantic IDs (RQ-VAE on the text features alone), same generator;
- ``random``: random codes of the same shape, same generator (the ablation).

Test Recall@10 / NDCG@10 are full-ranking numbers from the common `Evaluator`; model selection
uses validation NDCG@10 only. Every (seed, method) result is written as soon as it exists, so an
interrupted run resumes where it stopped. The run folder holds config, split, versions, per-seed
results and ``results.md``.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recfuse.atomic import atomic_path, write_json, write_text
from recfuse.data import load_dataset
from recfuse.errors import ConfigError
from recfuse.evaluation import Evaluator
from recfuse.provenance import package_versions
from recfuse.split import Split, make_split

METHODS = ("sasrec", "cemg", "text", "random")
LABELS = {
    "sasrec": "SASRec (full CE)",
    "cemg": "CEMG (text + collab guided)",
    "text": "TIGER-style text-only IDs",
    "random": "random codes (ablation)",
}
#: orientation numbers quoted by the issue (Amazon Beauty, not our datasets)
ORIENTATION = {
    "TIGER on Beauty (reported)": (0.0648, 0.0384),
    "well-trained SASRec on Beauty (reported)": (0.092, 0.053),
}


@dataclass(frozen=True)
class Budget:
    """Training budgets of one preset. ``None`` seconds: no time limit (early stopping only)."""

    tokenizer_steps: int
    tokenizer_seconds: float | None
    collab_seconds: float | None
    model_seconds: float | None
    epochs: int
    patience: int
    valid_users: int | None


PRESETS = {
    # a few seconds per step: checks that the study runs end to end, numbers mean nothing
    "smoke": Budget(40, 15, 10, 15, 1, 1, 200),
    # what a shared 2-core CPU allows: every model gets the same wall-clock cap
    "cpu": Budget(1500, 60, 45, 180, 200, 5, 500),
    # one GPU machine lent for minutes: every model capped at 60 s, early stopping within it
    "gpu": Budget(3000, 30, 30, 60, 300, 10, 2000),
    # early stopping alone decides (a GPU machine or a dedicated CPU, for hours)
    "full": Budget(5000, None, None, None, 300, 10, None),
}


def text_features(dataset_name: str, path: str | None) -> np.ndarray:
    """MiniLM text features [n_items, 384] (cached by recfuse.classify.embed), or a .npy file."""
    if path:
        return np.load(path, allow_pickle=False).astype(np.float32)
    from recfuse.classify.embed import embed_texts

    return embed_texts(load_dataset(dataset_name).item_texts(), model="minilm")


def run_method(
    method: str,
    split: Split,
    features: np.ndarray,
    seed: int,
    budget: Budget,
    device: str,
    folder: Path,
    collab_model: str = "sasrec",
    levels: int = 3,
    codebook_size: int | None = None,
) -> dict[str, Any]:
    """Fit one method for one seed and evaluate it on the test period; returns one table row."""
    from recfuse.generative.collaborative import collaborative_embeddings
    from recfuse.generative.recommender import GenerativeRecommender
    from recfuse.generative.semantic_ids import (
        TokenizerConfig,
        config_dict,
        fit_semantic_ids,
        random_semantic_ids,
    )
    from recfuse.models import SASRec

    train = {
        "seed": seed,
        "epochs": budget.epochs,
        "patience": budget.patience,
        "max_seconds": budget.model_seconds,
        "valid_users": budget.valid_users,
        "progress": False,
        "device": device,
    }
    row: dict[str, Any] = {"method": method, "seed": seed}
    tokenizer_seconds = 0.0
    if method == "sasrec":
        model: Any = SASRec(dim=64, loss="ce", **train)
    else:
        cfg = TokenizerConfig(
            levels=levels,
            codebook_size=codebook_size,
            steps=budget.tokenizer_steps,
            max_seconds=budget.tokenizer_seconds,
            seed=seed,
            device=device,
        )
        if method == "random":
            ids = random_semantic_ids(split.n_items, levels, codebook_size, seed)
        elif method == "text":
            ids = fit_semantic_ids({"text": features}, None, cfg)
        elif method == "cemg":
            collab, collab_report = collaborative_embeddings(
                split, collab_model, seed=seed, max_seconds=budget.collab_seconds, device=device
            )
            row["collab"] = collab_report
            tokenizer_seconds += collab_report["seconds"]
            ids = fit_semantic_ids({"text": features}, collab, cfg)
        else:
            raise ConfigError(f"method {method!r} is not one of {', '.join(METHODS)}")
        tokenizer_seconds += ids.seconds
        row["tokenizer"] = {**ids.summary(), "config": config_dict(cfg)}
        with atomic_path(folder / f"codes_{method}.npy") as tmp, tmp.open("wb") as fh:
            np.save(fh, ids.codes)
        model = GenerativeRecommender(ids.codes, name=method, **train)
    model.fit(split)
    result = Evaluator(split, ks=(10, 20)).evaluate(model, "test")
    row.update(
        {
            "Recall@10": result.metrics["Recall@10"],
            "NDCG@10": result.metrics["NDCG@10"],
            "Recall@20": result.metrics["Recall@20"],
            "NDCG@20": result.metrics["NDCG@20"],
            "Coverage@10": result.metrics["Coverage@10"],
            "valid_NDCG@10": model.best_valid_,
            "epochs_run": len(model.history_),
            "tokenizer_seconds": tokenizer_seconds,
            "train_seconds": model.train_seconds_,
            "inference_seconds": result.seconds,
            "inference_ms_per_user": 1000 * result.seconds / max(result.metrics["users"], 1),
            "test_users": int(result.metrics["users"]),
            "params": {k: v for k, v in model.get_params().items() if k != "train"},
        }
    )
    return row


def _mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    arr = np.asarray(values, dtype=float)
    return f"{arr.mean():.4f} ± {arr.std(ddof=1):.4f}" if len(arr) > 1 else f"{arr[0]:.4f}"


def results_table(rows: list[dict[str, Any]], dataset: str, preset: str) -> str:
    """Markdown table: mean ± std over seeds per method, then the orientation numbers."""
    lines = [
        f"### {dataset} (preset `{preset}`, leave-one-out, full ranking)",
        "",
        "| method | seeds | Recall@10 | NDCG@10 | collision rate | codebook usage (per level) "
        "| tokenizer s | train s | inference ms/user |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for method in METHODS:
        mine = [r for r in rows if r["method"] == method]
        if not mine:
            continue
        tok = [r.get("tokenizer") for r in mine]
        if all(t is not None for t in tok):
            collisions = _mean_std([t["collision_rate"] for t in tok])  # type: ignore[index]
            usage_levels = np.mean([t["usage"] for t in tok], axis=0)  # type: ignore[index]
            usage = " / ".join(f"{u:.2f}" for u in usage_levels)
        else:
            collisions, usage = "–", "–"
        lines.append(
            f"| {LABELS[method]} | {len(mine)} "
            f"| {_mean_std([r['Recall@10'] for r in mine])} "
            f"| {_mean_std([r['NDCG@10'] for r in mine])} | {collisions} | {usage} "
            f"| {np.mean([r['tokenizer_seconds'] for r in mine]):.0f} "
            f"| {np.mean([r['train_seconds'] for r in mine]):.0f} "
            f"| {np.mean([r['inference_ms_per_user'] for r in mine]):.2f} |"
        )
    for label, (recall, ndcg) in ORIENTATION.items():
        lines.append(f"| *{label}* | – | {recall:.4f} | {ndcg:.4f} | – | – | – | – | – |")
    return "\n".join(lines) + "\n"


def finished(folder: Path) -> list[dict[str, Any]]:
    """Every (seed, method) row written in a run folder, by seed then method."""
    rows = [json.loads(p.read_text()) for p in folder.glob("seed_*/*.json")]
    return sorted(rows, key=lambda r: (r["seed"], METHODS.index(r["method"])))


def main(
    dataset: str = "amazon-scientific",
    seeds: int = 3,
    first_seed: int = 0,
    preset: str = "full",
    out: str = "runs",
    methods: str = ",".join(METHODS),
    collab_model: str = "sasrec",
    levels: int = 3,
    codebook_size: int = 0,
    text_features_path: str = "",
    device: str = "cpu",
    threads: int = 1,
) -> None:
    """CEMG vs text-only semantic IDs vs random codes vs SASRec, over seeds, into a run folder.

    Reports test Recall/NDCG@10 (full ranking), collision rate, codebook usage and time.

    Seeds first_seed .. first_seed + seeds - 1 run here; processes started with different
    first_seed values share one run folder (the seeds are not part of its key), and the table
    covers every seed finished there.

    codebook_size 0 picks K from the catalogue size; text_features_path is an optional .npy
    [n_items, d] used instead of MiniLM features.
    """
    if preset not in PRESETS:
        raise ConfigError(f"preset {preset!r} is not one of {', '.join(PRESETS)}")
    chosen = [m.strip() for m in methods.split(",") if m.strip()]
    unknown = sorted(set(chosen) - set(METHODS))
    if unknown:
        raise ConfigError(f"methods: unknown {', '.join(unknown)} (known: {', '.join(METHODS)})")
    torch.set_num_threads(threads)
    budget = PRESETS[preset]
    config = {
        "study": "cemg",
        "dataset": dataset,
        "preset": preset,
        "budget": asdict(budget),
        "methods": chosen,
        "collab_model": collab_model,
        "levels": levels,
        "codebook_size": codebook_size or "auto",
        "text_features": text_features_path or "minilm mean of last layer (recfuse.classify)",
        "split": "leave_one_out",
        "device": device,
        "threads": threads,
    }
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    folder = Path(out) / f"cemg-{dataset}-{preset}-{key}"
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / "config.json", config)  # the seeds are the seed_* folders
    write_json(folder / "versions.json", package_versions(("peft", "vector-quantize-pytorch")))
    data = load_dataset(dataset)
    split = make_split(data, "leave_one_out", 0)
    if not (folder / "split" / "split.json").is_file():
        split.save(folder / "split")
    features = text_features(dataset, text_features_path or None)
    if len(features) != split.n_items:
        raise ConfigError(f"text features have {len(features)} rows, {dataset} has {split.n_items}")
    for seed in range(first_seed, first_seed + seeds):
        seed_dir = folder / f"seed_{seed}"
        seed_dir.mkdir(exist_ok=True)
        for method in chosen:
            path = seed_dir / f"{method}.json"
            if path.is_file():  # resumable: a finished (seed, method) is not recomputed
                continue
            started = time.perf_counter()
            row = run_method(
                method,
                split,
                features,
                seed,
                replace(budget),
                device,
                seed_dir,
                collab_model=collab_model,
                levels=levels,
                codebook_size=codebook_size or None,
            )
            row["wall_seconds"] = time.perf_counter() - started
            write_json(path, row)
            print(
                f"[cemg] {dataset} seed {seed} {method}: Recall@10 {row['Recall@10']:.4f} "
                f"NDCG@10 {row['NDCG@10']:.4f} ({row['wall_seconds']:.0f} s)",
                flush=True,
            )
            write_text(folder / "results.md", results_table(finished(folder), dataset, preset))
    rows = finished(folder)
    write_json(folder / "results.json", rows)
    table = results_table(rows, dataset, preset)
    write_text(folder / "results.md", table)
    print(table)
    print(f"run folder: {folder}")
