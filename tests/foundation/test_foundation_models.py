"""Every baseline meets the Recommender interface and learns real signal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recfuse.data import build_dataset, load_dataset
from recfuse.evaluation import Evaluator, fit_validated
from recfuse.models import BPR, EASE, GRU4Rec, ItemKNN, Pop, SASRec
from recfuse.runs import Experiment, load_config, load_run, run_config
from recfuse.split import make_split


def _cyclic_dataset(n_users: int = 300, n_items: int = 40, length: int = 12) -> pd.DataFrame:
    """Each user walks the item cycle i -> i+1 from a random start: perfectly predictable order."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(n_users):
        start = rng.integers(n_items)
        rows += [(f"u{u}", f"i{(start + t) % n_items}", t) for t in range(length)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "time"])


@pytest.mark.parametrize(
    "model",
    [
        SASRec(epochs=15, lr=5e-3, max_len=10, progress=False),
        SASRec(loss="sampled", negatives=16, epochs=15, lr=5e-3, max_len=10, progress=False),
        GRU4Rec(epochs=15, lr=5e-3, max_len=10, progress=False),
    ],
)
def test_sequential_models_learn_a_cycle(model) -> None:  # type: ignore[no-untyped-def]
    split = make_split(
        build_dataset("cycle", _cyclic_dataset(), has_timestamps=False), "leave_one_out"
    )
    fit_validated(model, split)
    ndcg = Evaluator(split, ks=(1,)).evaluate(model, "test").metrics["NDCG@1"]
    assert ndcg > 0.8, f"{model.name} did not learn i -> i+1 (NDCG@1 {ndcg:.3f})"
    assert model.best_valid_ > 0.5


def test_baselines_on_ml100k_beat_popularity_where_expected() -> None:
    split = make_split(load_dataset("ml-100k"), "leave_one_out")
    table = Experiment(
        split, [Pop(), ItemKNN(), EASE(), BPR(epochs=30, progress=False)], verbose=False
    ).run()
    ndcg = dict(zip(table["model"], table["NDCG@10"], strict=True))
    assert ndcg["EASE"] > ndcg["Pop"] and ndcg["ItemKNN"] > ndcg["Pop"]
    assert ndcg["EASE"] > ndcg["BPR"]  # EASE beats BPR on MovieLens in every published table
    assert (table["protocol"] == "full").all()


def test_run_folder_is_complete_and_checkpoint_reloads(tmp_path: Path) -> None:
    config = load_config(
        None,
        [
            f"output={tmp_path}",
            "name=t",
            "data.name=ml-100k",
            "model.name=sasrec",
            "model.params={dim: 16, max_len: 20}",
            "train.epochs=1",
            "eval.max_users=100",
        ],
    )
    folder = run_config(config)
    for name in (
        "config.yaml",
        "versions.json",
        "metrics.json",
        "metrics.md",
        "log.txt",
        "model/model.json",
        "model/weights.safetensors",
        "ids/items.parquet",
        "split/split.json",
        "per_user_test_sasrec.parquet",
    ):
        assert (folder / name).is_file(), name
    assert not list(tmp_path.glob(".tmp-*"))
    model = load_run(folder)
    assert isinstance(model, SASRec) and model.dim == 16 and model.max_len == 20
    split = make_split(load_dataset("ml-100k"), "leave_one_out")
    # the reloaded model ranks like the saved one: its test NDCG@10 matches the run's
    saved = json.loads((folder / "metrics.json").read_text())["SASRec"]["test"]
    candidates = np.unique(split.test["user"].to_numpy())
    same_users = np.random.default_rng(0).choice(candidates, 100, replace=False)  # as the run
    again = Evaluator(split, users=same_users).evaluate(model, "test").metrics
    assert saved["users"] == 100
    assert again["NDCG@10"] == pytest.approx(saved["NDCG@10"], abs=1e-12)
    assert again["Recall@10"] == pytest.approx(saved["Recall@10"], abs=1e-12)
