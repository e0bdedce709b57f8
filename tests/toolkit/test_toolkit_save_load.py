"""Every model saves and loads to identical scores; loading refuses mismatched data."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recfuse.data import Dataset, dataset_fingerprint, k_core
from recfuse.data.ids import IdMaps
from recfuse.errors import DataError
from recfuse.evaluation import fit_validated
from recfuse.generative.recommender import GenerativeRecommender
from recfuse.generative.semantic_ids import random_semantic_ids
from recfuse.models import BPR, EASE, GRU4Rec, ItemKNN, Pop, Recommender, SASRec
from recfuse.runs import load_run
from recfuse.split import Split

SMALL = {"epochs": 1, "progress": False}


def _models(n_items: int) -> list[Recommender]:
    codes = random_semantic_ids(n_items, levels=2, codebook_size=64).codes
    return [
        Pop(),
        ItemKNN(k=20),
        EASE(l2=300.0),
        BPR(dim=8, **SMALL),
        SASRec(dim=16, max_len=20, **SMALL),
        SASRec(dim=16, max_len=20, loss="sampled", negatives=32, **SMALL),
        GRU4Rec(dim=16, max_len=20, **SMALL),
        GenerativeRecommender(codes, max_items=5, dim=16, layers=1, beam=10, **SMALL),
    ]


@pytest.mark.parametrize("index", range(8))
def test_save_load_gives_identical_scores(
    index: int, ml100k: Dataset, ml100k_split: Split, tmp_path: Path
) -> None:
    model = _models(ml100k.n_items)[index]
    fit_validated(model, ml100k_split)
    users = np.arange(0, ml100k.n_users, 9)[:60]
    histories = ml100k_split.histories("test")
    hist = [histories[u] for u in users]
    before = model.score(users, hist)
    model.save(tmp_path / "m", ids=IdMaps.from_dataset(ml100k))
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["dataset_fingerprint"] == dataset_fingerprint(ml100k)
    assert not list((tmp_path / "m").glob("*.pkl"))
    loaded = Recommender.load(tmp_path / "m", dataset=ml100k)
    assert type(loaded) is type(model) and loaded.name == model.name
    np.testing.assert_array_equal(loaded.score(users, hist), before)
    assert len(loaded.recommend_raw("196", k=5)) == 5
    if not loaded.needs_known_user:  # a user the model never saw, from raw item ids
        recs = loaded.recommend_raw(history=["50", "172", "181"], k=5)
        assert len(recs) == 5 and not {"50", "172", "181"} & {r.item_id for r in recs}


def test_loading_against_other_data_is_refused(ease_run: Path, ml100k: Dataset) -> None:
    other = k_core(ml100k, 10, 10)
    with pytest.raises(DataError, match="fingerprint mismatch"):
        load_run(ease_run, dataset=other)
    assert load_run(ease_run, dataset=ml100k).name == "EASE"


def test_changed_split_files_and_format_version_are_refused(ease_run: Path, tmp_path: Path) -> None:
    import shutil

    import pandas as pd

    copy = tmp_path / "run"
    shutil.copytree(ease_run, copy)
    train = pd.read_parquet(copy / "split" / "split_train.parquet")
    train.iloc[1:].to_parquet(copy / "split" / "split_train.parquet")  # one interaction fewer
    with pytest.raises(DataError, match="fingerprint mismatch"):
        load_run(copy)
    shutil.rmtree(copy)
    shutil.copytree(ease_run, copy)
    meta = json.loads((copy / "model" / "model.json").read_text())
    meta["format_version"] = 99
    (copy / "model" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="format version 99"):
        load_run(copy)


def test_only_recfuse_classes_are_loaded(ease_run: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(ease_run, copy)
    meta = json.loads((copy / "model" / "model.json").read_text())
    meta["class"] = "os:system"
    (copy / "model" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="not a recfuse model"):
        load_run(copy)


def test_bpr_refuses_a_new_history(ml100k: Dataset, ml100k_split: Split) -> None:
    model = fit_validated(BPR(dim=8, **SMALL), ml100k_split)
    model.ids_ = IdMaps.from_dataset(ml100k)
    with pytest.raises(DataError, match="needs a known user"):
        model.recommend_raw(history=["50", "172"])
