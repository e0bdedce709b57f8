"""Who-made-it probe: finds an encoded group, falls to chance on shuffled labels."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recfuse.audit.learner import NetConfig
from recfuse.audit.probes import (
    chance_top_k,
    context_only_predict,
    knn_group_fitter,
    network_group_fitter,
    score,
    shuffled_labels,
    sparse_top_k,
    top_k_accuracy,
    who_made_it,
)
from recfuse.audit.splits import random_split

torch.set_num_threads(1)


def group_signature_data(seed: int = 0, n_groups: int = 40, per_group: int = 15):
    """Binary 'fingerprints': each group has 8 signature bits among 512, plus 12 random bits."""
    rng = np.random.default_rng(seed)
    codes = np.repeat(np.arange(n_groups), per_group)
    signature = rng.integers(0, 512, size=(n_groups, 8))
    rows, cols = [], []
    for i, g in enumerate(codes):
        bits = np.unique(np.concatenate([signature[g], rng.integers(0, 512, size=12)]))
        rows += [i] * len(bits)
        cols += bits.tolist()
    x = sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(codes), 512))
    return x, codes


@pytest.mark.parametrize("kind", ["knn", "mlp"])
def test_probe_names_the_group_and_shuffled_control_falls_to_chance(kind: str) -> None:
    x, codes = group_signature_data()
    n_classes = int(codes.max()) + 1
    parts = random_split(len(codes), seed=0)
    train, test = np.flatnonzero(parts == 0), np.flatnonzero(parts == 2)

    def fitter(labels: np.ndarray):  # noqa: ANN202
        if kind == "knn":
            return knn_group_fitter(x, labels, n_classes)
        return network_group_fitter(x, labels, n_classes, 0, NetConfig(hidden=64, epochs=15))

    real = who_made_it(fitter(codes)(train), codes, train, test)
    assert real["top1"] > 0.8
    shuffled = shuffled_labels(codes, seed=1)
    assert sorted(shuffled.tolist()) == sorted(codes.tolist())  # same frequencies
    control = who_made_it(fitter(shuffled)(train), shuffled, train, test)
    assert control["top5"] <= control["chance_top5"] + 0.06
    assert control["top1"] <= control["chance_top1"] + 0.04


def test_top_k_and_chance_by_hand() -> None:
    probs = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    labels = np.array([1, 1, 0])
    assert top_k_accuracy(probs, labels, 1) == pytest.approx(1 / 3)
    assert top_k_accuracy(probs, labels, 2) == pytest.approx(2 / 3)
    assert top_k_accuracy(probs, labels, 3) == 1.0
    # train groups by frequency: 2 (3x), 0 (2x), 1 (1x)
    train = np.array([2, 2, 2, 0, 0, 1])
    assert chance_top_k(train, np.array([2, 0, 1, 1]), 1) == 0.25
    assert chance_top_k(train, np.array([2, 0, 1, 1]), 2) == 0.5


def test_sparse_top_k_keeps_largest() -> None:
    probs = np.array([[0.1, 0.6, 0.3, 0.0], [0.25, 0.25, 0.1, 0.4]], dtype=np.float32)
    kept = sparse_top_k(probs, 2).toarray()
    assert np.allclose(kept, [[0, 0.6, 0.3, 0], [0.25, 0, 0, 0.4]]) or np.allclose(
        kept, [[0, 0.6, 0.3, 0], [0, 0.25, 0, 0.4]]
    )


def test_context_only_uses_training_rows_per_context() -> None:
    context = np.array([0, 0, 1, 1, 0, 1, 2])
    y = np.array([1.0, 3.0, 10.0, 20.0, 100.0, 200.0, 7.0])
    parts = np.array([0, 0, 0, 0, 2, 2, 2])  # context 2 unseen in training
    pred = context_only_predict(context, y, "regression", 0, parts)
    assert np.allclose(pred, [2.0, 15.0, np.mean([1.0, 3.0, 10.0, 20.0])])
    labels = np.array([0, 0, 1, 1, 0, 1, 1])
    probs = context_only_predict(context, labels, "classification", 2, parts)
    assert np.allclose(probs, [[1, 0], [0, 1], [0.5, 0.5]])


def test_score_metrics() -> None:
    reg = score("regression", np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]))
    assert reg["main"] == 1.0 and reg["rmse"] == 0.0
    clf = score(
        "classification", np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    )
    assert clf["main"] == 1.0  # AUC: both positives above the negative
    assert clf["accuracy"] == pytest.approx(2 / 3)
