"""The one early-stopping rule, and the trainer taking its validation score from the caller."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from recfuse.data import build_dataset
from recfuse.errors import ConfigError
from recfuse.models import SASRec
from recfuse.models.early_stopping import EarlyStopping
from recfuse.split import make_split


def _net(value: float) -> torch.nn.Linear:
    net = torch.nn.Linear(1, 1)
    with torch.no_grad():
        net.weight.fill_(value)
    return net


def test_max_mode_stops_after_patience_and_restores_the_best_weights() -> None:
    stop = EarlyStopping(patience=3, mode="max")
    scores = [0.1, 0.3, 0.2, 0.25, 0.29, 0.9]
    decisions = [stop.step(s, _net(s)) for s in scores[:5]]
    assert decisions == [False, False, False, False, True]
    assert stop.best == 0.3 and stop.best_epoch == 1 and stop.bad_epochs == 3
    target = _net(0.0)
    assert stop.restore(target)
    assert target.weight.item() == pytest.approx(0.3)


def test_min_mode_counts_only_improvements_beyond_min_delta() -> None:
    stop = EarlyStopping(patience=2, mode="min", min_delta=1e-3)
    assert not stop.step(1.0)
    assert not stop.step(0.9995)  # better, but by less than min_delta: a bad epoch
    assert stop.best == 1.0 and stop.bad_epochs == 1
    assert not stop.step(0.5)
    assert stop.best == 0.5 and stop.bad_epochs == 0


def test_nan_never_improves_and_nothing_kept_means_nothing_restored() -> None:
    stop = EarlyStopping(patience=2)
    assert not stop.step(math.nan, _net(1.0))
    assert stop.step(math.nan, _net(2.0))
    assert stop.best == -math.inf and stop.best_state is None
    target = _net(7.0)
    assert not stop.restore(target)
    assert target.weight.item() == 7.0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="patience"):
        EarlyStopping(patience=0)
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(patience=1, mode="up")  # type: ignore[arg-type]


def _tiny_split():  # type: ignore[no-untyped-def]
    rows = [(u, (u + t) % 12, t) for u in range(30) for t in range(8)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "time"])
    return make_split(build_dataset("tiny", frame, has_timestamps=False), "leave_one_out")


def test_trainer_early_stops_on_the_callers_score_and_keeps_the_best_epoch() -> None:
    split = _tiny_split()
    scripted = iter([0.2, 0.5, 0.4, 0.3, 0.1, 0.9, 0.9])
    states: list[dict[str, torch.Tensor]] = []

    def validate(model: SASRec) -> float:
        states.append({k: v.clone() for k, v in model.net_.state_dict().items()})
        return next(scripted)

    model = SASRec(dim=8, max_len=6, epochs=7, patience=3, progress=False)
    model.fit(split, validate=validate)
    assert len(model.history_) == 5  # best at epoch 1, then 3 epochs without improvement
    assert [h["NDCG@10"] for h in model.history_] == [0.2, 0.5, 0.4, 0.3, 0.1]
    assert model.best_valid_ == 0.5
    for name, value in model.net_.state_dict().items():
        assert torch.equal(value, states[1][name]), name


def test_trainer_refuses_patience_without_a_validation_score() -> None:
    with pytest.raises(ConfigError, match="fit_validated"):
        SASRec(dim=8, max_len=6, epochs=3, patience=2, progress=False).fit(_tiny_split())


def test_trainer_without_patience_or_score_runs_every_epoch() -> None:
    model = SASRec(dim=8, max_len=6, epochs=3, patience=None, progress=False)
    model.fit(_tiny_split())
    assert len(model.history_) == 3 and "NDCG@10" not in model.history_[0]
    assert np.isnan(model.best_valid_)


def test_models_never_import_evaluation() -> None:
    root = Path(__file__).resolve().parents[2] / "src" / "recfuse" / "models"
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("recfuse.evaluation"), path.name


def test_validation_score_is_the_metric_on_the_validation_stage() -> None:
    from recfuse.evaluation import Evaluator, validation_score
    from recfuse.models import Pop, TrainConfig

    split = _tiny_split()
    pop = Pop().fit(split)
    expected = Evaluator(split, ks=(5,)).evaluate(pop, "valid").metrics
    assert (
        validation_score(split, TrainConfig(valid_metric="Recall@5"))(pop) == expected["Recall@5"]
    )
    assert validation_score(split, TrainConfig(valid_metric="MRR"))(pop) == expected["MRR"]
    subset = validation_score(split, TrainConfig(valid_users=7, seed=3))
    assert 0.0 <= subset(pop) <= 1.0
    with pytest.raises(ConfigError, match="valid_metric"):
        validation_score(split, TrainConfig(valid_metric="AUC"))(pop)
