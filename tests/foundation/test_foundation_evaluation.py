"""Metrics equal hand-computed values; ties count against the model; masking; batch invariance."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from recfuse.data import build_dataset, load_dataset
from recfuse.evaluation import Evaluator, gini, paired_test
from recfuse.models import EASE, Pop, Recommender
from recfuse.split import Split, make_split


class FixedScores(Recommender):
    """Returns a given score matrix (rows = users)."""

    name = "fixed"

    def __init__(self, scores: np.ndarray) -> None:
        self.scores = scores

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        return self.scores[users]


def _split(
    train: list[tuple[int, int]], test: list[tuple[int, int]], n_users: int, n_items: int
) -> Split:
    def frame(pairs: list[tuple[int, int]]) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "user": [u for u, _ in pairs],
                "item": [i for _, i in pairs],
                "time": range(len(pairs)),
            },
            dtype=np.int64,
        )

    return Split("crafted", 0, n_users, n_items, frame(train), frame([]), frame(test))


def test_hand_computed_single_target() -> None:
    # user 0: target item 2 scored 0.5; items 0 (0.9) and 3 (0.7) above it, item 1 is history (masked)
    split = _split([(0, 1)], [(0, 2)], 1, 5)
    model = FixedScores(np.array([[0.9, 5.0, 0.5, 0.7, 0.1]], dtype=np.float32))
    m = Evaluator(split, ks=(1, 3, 5)).evaluate(model, "test").metrics
    assert m["Hit@1"] == 0 and m["Hit@3"] == 1
    assert m["NDCG@3"] == pytest.approx(1 / np.log2(4))
    assert m["MRR"] == pytest.approx(1 / 3)
    assert m["Precision@3"] == pytest.approx(1 / 3)
    assert m["Recall@5"] == 1


def test_ties_are_broken_pessimistically() -> None:
    # every item scores the same: the target must rank last among the 4 unmasked items
    split = _split([(0, 0)], [(0, 1)], 1, 5)
    model = FixedScores(np.zeros((1, 5), dtype=np.float32))
    m = Evaluator(split, ks=(1, 3, 4)).evaluate(model, "test").metrics
    assert m["Hit@3"] == 0 and m["Hit@4"] == 1
    assert m["MRR"] == pytest.approx(1 / 4)
    # a single tie above: target 1 ties item 3 -> rank 2 (item 2 strictly above, item 3 tied)
    model = FixedScores(np.array([[9.0, 0.5, 0.8, 0.5, 0.1]], dtype=np.float32))
    assert Evaluator(split, ks=(2,)).evaluate(model, "test").metrics["MRR"] == pytest.approx(1 / 3)


def test_multiple_targets_recall_and_ndcg() -> None:
    split = _split([(0, 4)], [(0, 0), (0, 3)], 1, 5)
    model = FixedScores(np.array([[0.9, 0.8, 0.7, 0.6, 0.0]], dtype=np.float32))
    m = Evaluator(split, ks=(2, 4)).evaluate(model, "test").metrics
    assert m["Recall@2"] == pytest.approx(0.5)
    assert m["Recall@4"] == pytest.approx(1.0)
    idcg = 1 + 1 / np.log2(3)
    assert m["NDCG@4"] == pytest.approx((1 + 1 / np.log2(5)) / idcg)


def test_masking_removes_history() -> None:
    # history items have the highest scores; masked, the target is first
    split = _split([(0, 0), (0, 1)], [(0, 2)], 1, 4)
    model = FixedScores(np.array([[10.0, 9.0, 1.0, 0.0]], dtype=np.float32))
    result = Evaluator(split, ks=(1,)).evaluate(model, "test")
    assert result.metrics["Hit@1"] == 1
    top = model.recommend(np.array([0]), [np.array([0, 1])], k=2)
    assert top.tolist() == [[2, 3]]


def test_nan_scores_are_worst_not_best() -> None:
    split = _split([(0, 0)], [(0, 1)], 1, 4)
    model = FixedScores(np.array([[0.0, np.nan, 0.5, 0.2]], dtype=np.float32))
    assert Evaluator(split, ks=(3,)).evaluate(model, "test").metrics["Hit@3"] == 0


def test_metrics_identical_across_batch_sizes() -> None:
    split = make_split(load_dataset("ml-100k"), "leave_one_out")
    model = EASE(l2=300).fit(split)
    results = [Evaluator(split, batch_users=b).evaluate(model, "test") for b in (7, 100, 4096)]
    for other in results[1:]:
        assert other.metrics == results[0].metrics
        pd.testing.assert_frame_equal(other.per_user, results[0].per_user)


def test_sampled_evaluation_is_labelled_and_easier() -> None:
    split = make_split(load_dataset("ml-100k"), "leave_one_out")
    model = Pop().fit(split)
    full = Evaluator(split).evaluate(model, "test")
    sampled = Evaluator(split, sampled_negatives=100).evaluate(model, "test")
    assert full.protocol == "full" and sampled.protocol == "sampled-100"
    assert sampled.metrics["NDCG@10"] > full.metrics["NDCG@10"]


def test_beyond_accuracy_and_slices() -> None:
    split = make_split(load_dataset("ml-100k"), "leave_one_out")
    result = Evaluator(split, ks=(10,)).evaluate(Pop().fit(split), "test")
    # the same list for everyone: coverage is at most the unmasked top-10s
    assert result.metrics["Coverage@10"] < 0.1
    assert result.metrics["TailShare@10"] == 0.0
    assert {"history 51-", "head target", "tail target"} <= set(result.slices.index)
    assert gini(np.array([0, 0, 0, 10])) == pytest.approx(0.75)
    assert gini(np.array([5, 5, 5, 5])) == pytest.approx(0.0)


def test_paired_test_detects_a_real_difference() -> None:
    split = make_split(load_dataset("ml-100k"), "leave_one_out")
    ev = Evaluator(split)
    ease = ev.evaluate(EASE().fit(split), "test").per_user
    pop = ev.evaluate(Pop().fit(split), "test").per_user
    test = paired_test(ease, pop, "NDCG@10")
    assert test.n_users == 943 and test.diff > 0 and test.t_pvalue < 0.01
    same = paired_test(ease, ease, "NDCG@10")
    assert same.t_pvalue == 1.0


def test_evaluation_on_tiny_dataset_end_to_end() -> None:
    raw = pd.DataFrame(
        {"user_id": list("aaabbb"), "item_id": list("xyzxyz"), "time": [0, 1, 2, 0, 1, 2]}
    )
    split = make_split(build_dataset("tiny", raw, has_timestamps=False), "leave_one_out")
    result = Evaluator(split, ks=(1,)).evaluate(Pop().fit(split), "test")
    assert result.metrics["users"] == 2
