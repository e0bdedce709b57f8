"""The reliability gate: predicts, per pair, whether the teacher's preference is right.

Features x (all from the training period): [log history length, log popularity of i and of j,
backbone entropy over all items, backbone margin s_i − s_j, teacher confidence |p − 0.5|].
Labels: 1 when the teacher prefers the held-out training item (p > 0.5), whose truth is known
without any validation or test data. The gate is cross-fitted over users — each user's pairs
are gated by a model fitted on the other users — so a gate value is never a memorized label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from recfuse.errors import ConfigError

FEATURES = ("log_hist", "log_pop_i", "log_pop_j", "entropy", "margin", "confidence")
GateKind = Literal["logistic", "mlp"]


def gate_features(
    hist_len: np.ndarray,
    pop_i: np.ndarray,
    pop_j: np.ndarray,
    entropy: np.ndarray,
    margin: np.ndarray,
    p: np.ndarray,
) -> pd.DataFrame:
    """The gate's inputs, one row per pair (all arrays [n_pairs])."""
    return pd.DataFrame(
        {
            "log_hist": np.log1p(hist_len),
            "log_pop_i": np.log1p(pop_i),
            "log_pop_j": np.log1p(pop_j),
            "entropy": entropy,
            "margin": margin,
            "confidence": np.abs(p - 0.5),
        }
    )


def score_entropy(scores: np.ndarray) -> np.ndarray:
    """Entropy (nats) of softmax(scores) per row: [B, n_items] -> [B]."""
    z = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(z)
    prob = e / e.sum(axis=1, keepdims=True)
    return -(prob * np.log(np.clip(prob, 1e-300, None))).sum(axis=1)


def _model(kind: GateKind, seed: int):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "logistic":  # g(x) = sigmoid(w·x + b) on standardized x
        return make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000))
    if kind == "mlp":
        net = MLPClassifier((16,), alpha=1e-3, max_iter=500, early_stopping=True, random_state=seed)
        return make_pipeline(StandardScaler(), net)
    raise ConfigError(f"gate: {kind!r} is not 'logistic' or 'mlp'")


@dataclass
class GateFit:
    """Cross-fitted gate values and what describes them."""

    g: np.ndarray  # [n_pairs] in (0, 1)
    labels: np.ndarray  # [n_pairs] 1 = teacher right
    weights: dict[str, float]  # logistic coefficients (standardized features), if logistic

    @property
    def coverage(self) -> float:
        """Mean gate value: the share of the teacher's supervision that is let through."""
        return float(self.g.mean())

    def open_share(self, threshold: float = 0.5) -> float:
        return float((self.g > threshold).mean())


def fit_gate(
    x: pd.DataFrame,
    labels: np.ndarray,
    users: np.ndarray,
    kind: GateKind = "logistic",
    folds: int = 5,
    seed: int = 0,
) -> GateFit:
    """Cross-fit the gate over user folds; ``labels`` 1 where the teacher is right."""
    labels = np.asarray(labels, dtype=int)
    g = np.full(len(labels), float(labels.mean()) if len(labels) else 0.5)
    uniq = np.unique(users)
    fold_of = dict(
        zip(uniq, np.random.default_rng(seed).permutation(len(uniq)) % folds, strict=True)
    )
    fold = np.array([fold_of[u] for u in users])
    values = x[list(FEATURES)].to_numpy(dtype=np.float64)
    for f in range(folds):
        test, train = fold == f, fold != f
        if not test.any() or len(np.unique(labels[train])) < 2:
            continue  # one class only: the base rate is the best gate
        model = _model(kind, seed).fit(values[train], labels[train])
        g[test] = model.predict_proba(values[test])[:, 1]
    weights: dict[str, float] = {}
    if kind == "logistic" and len(np.unique(labels)) == 2:
        full = _model(kind, seed).fit(values, labels)
        weights = dict(zip(FEATURES, full[-1].coef_[0].round(4).tolist(), strict=True))
    return GateFit(g, labels, weights)


def reliability_curve(g: np.ndarray, labels: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Per equal-width bin of g: pairs, mean g, observed teacher accuracy; plus ECE in attrs."""
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(g, edges[1:-1]), 0, bins - 1)
    rows = []
    for b in range(bins):
        m = which == b
        if m.any():
            rows.append(
                (
                    f"{edges[b]:.1f}-{edges[b + 1]:.1f}",
                    int(m.sum()),
                    float(g[m].mean()),
                    float(labels[m].mean()),
                )
            )
    frame = pd.DataFrame(rows, columns=["bin", "pairs", "mean_gate", "teacher_accuracy"])
    ece = float(
        (frame["pairs"] * (frame["mean_gate"] - frame["teacher_accuracy"]).abs()).sum()
        / max(len(g), 1)
    )
    frame.attrs["ece"] = ece
    return frame
