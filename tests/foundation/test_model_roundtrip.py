"""Models rebuild from their own parameters, reload to identical scores, and a failing run
folder leaves nothing behind."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from recfuse.data import load_dataset
from recfuse.evaluation import fit_validated
from recfuse.models import MODELS, TorchRecommender
from recfuse.runs import RunFolder, build_model, load_config
from recfuse.runs.config import TrainSection
from recfuse.split import make_split

#: small, non-default parameters: a round trip that only returned defaults would not pass
PARAMS = {
    "pop": {},
    "itemknn": {"k": 7, "shrink": 2.0},
    "ease": {"l2": 33.0},
    "bpr": {"dim": 8, "reg": 0.01},
    "sasrec": {"dim": 8, "max_len": 12, "blocks": 1, "heads": 2, "loss": "sampled", "negatives": 9},
    "gru4rec": {"dim": 8, "max_len": 12, "layers": 2, "dropout": 0.1},
    "itemcf": {"k": 7, "mode": "conditional", "alpha": 0.3, "n_recent": 2},
    "swing": {"alpha": 2.0, "user_alpha": 1.0, "max_users": 9, "k": 11, "seed": 4},
    "embi2i": {"dim": 6, "n_recent": 3, "decay": 0.5, "seed": 2},
}
TRAIN = {"epochs": 1, "batch_size": 64, "lr": 0.01, "patience": 2, "valid_users": 50}


def _config(name: str, params: dict[str, object], train: dict[str, object], seed: int = 3):
    sets = [
        "data.name=ml-100k", f"model.name={name}", f"model.params={json.dumps(params)}",
        f"train={json.dumps(train)}", f"seed={seed}",
    ]  # fmt: skip
    return load_config(None, sets)


def test_every_model_is_listed() -> None:
    assert set(PARAMS) == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_get_params_round_trips_through_build_model(name: str) -> None:
    model = build_model(_config(name, PARAMS[name], TRAIN))
    params = model.get_params()
    train = params.pop("train", None)
    for key, value in PARAMS[name].items():
        assert params[key] == value, key
    run_keys = set(TrainSection.model_fields)
    again = build_model(
        _config(name, params, {k: v for k, v in (train or {}).items() if k in run_keys})
    )
    assert again.get_params() == model.get_params()
    if train is not None:
        assert train["seed"] == 3 and train["lr"] == 0.01


@pytest.fixture(scope="module")
def split():  # type: ignore[no-untyped-def]
    return make_split(load_dataset("ml-100k"), "leave_one_out")


@pytest.mark.parametrize("name", ["bpr", "sasrec", "gru4rec"])
def test_reloaded_checkpoint_scores_identically(name: str, split, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = build_model(_config(name, PARAMS[name], TRAIN))
    assert isinstance(model, TorchRecommender)
    model.train_config = dataclasses.replace(model.train_config, progress=False)
    fit_validated(model, split)
    model.save_weights(tmp_path / "model.safetensors")
    fresh = build_model(_config(name, PARAMS[name], TRAIN))
    assert isinstance(fresh, TorchRecommender)
    fresh.net_ = fresh.build(split)
    users = np.arange(40)
    histories = split.histories("test")[:40]
    before = fresh.score(users, histories)
    fresh.load_weights(tmp_path / "model.safetensors")
    fresh.net_.eval()
    after = fresh.score(users, histories)
    assert np.array_equal(after, model.score(users, histories))
    assert not np.array_equal(before, after)  # the reload changed something: it is a real load


def test_run_folder_is_removed_on_an_exception_inside_it(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="boom"), RunFolder(tmp_path, "x") as run:
        run.write_text("partial.txt", "half a result")
        assert run.path.is_dir() and (run.path / "partial.txt").is_file()
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
