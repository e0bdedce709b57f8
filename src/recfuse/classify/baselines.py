"""Baselines on the same parts and the same validation-tuned thresholds.

- `flat_mlp`: the dual-path network with independent (flat, one-vs-rest) heads, no graph.
- `hierarchical_mlp`: hierarchical (Level 2 conditioned on Level 1), free classifiers, no graph.
- `LinearOvR` on the frozen features (``features="dense"``): flat one-vs-rest logistic regression.
- `LinearOvR` on TF-IDF of blurb (+ kept reviews) (``features="tfidf"``), vectorizer fit on train.

Logistic regressions choose C on the validation part (micro F1 at the default 0.5 cut).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from recfuse.classify.book_features import BookFeatures
from recfuse.classify.metrics import level2_scores
from recfuse.classify.model import GenreClassifier, HiGeMineClassifier, Targets


def flat_mlp(**kwargs: Any) -> HiGeMineClassifier:
    """Same encoder, flat one-vs-rest heads, no label graph."""
    return HiGeMineClassifier(graph=False, hierarchical=False, **kwargs)


def hierarchical_mlp(**kwargs: Any) -> HiGeMineClassifier:
    """Hierarchical conditioning without the label graph (free classifier vectors)."""
    return HiGeMineClassifier(graph=False, hierarchical=True, **kwargs)


class _ConstantModel:
    """Stands in for a logistic regression on a genre with one class in training."""

    def __init__(self, value: float):
        self.value = value

    def predict_proba(self, x: Any) -> np.ndarray:
        p = np.full(x.shape[0], self.value)
        return np.stack([1 - p, p], axis=1)


def _fit_binary(x: Any, y: np.ndarray, c: float) -> Any:
    if y.min() == y.max():
        return _ConstantModel(float(y[0]))
    return LogisticRegression(C=c, max_iter=500).fit(x, y)


@dataclass
class LinearOvR(GenreClassifier):
    """Flat one-vs-rest logistic regression on ``dense`` frozen features or ``tfidf`` text."""

    features: str = "dense"
    c_grid: tuple[float, ...] = (1.0, 10.0)
    chosen_c: float = 0.0
    vectorizer: TfidfVectorizer | None = None
    models: list[Any] = field(default_factory=list)

    def _matrix(self, feats: BookFeatures) -> Any:
        if self.features == "tfidf":
            assert self.vectorizer is not None
            return self.vectorizer.transform(feats.texts)
        return feats.dense()

    def _fit(
        self, train: BookFeatures, y_train: Targets, valid: BookFeatures, y_valid: Targets
    ) -> None:
        if self.features == "tfidf":  # vocabulary and idf from the training texts only
            self.vectorizer = TfidfVectorizer(
                sublinear_tf=True,
                min_df=2,
                max_features=50_000,
                ngram_range=(1, 2),
                stop_words="english",
            ).fit(train.texts)
        xt, xv = self._matrix(train), self._matrix(valid)
        best = -1.0
        for c in self.c_grid:
            models = [_fit_binary(xt, y_train.level1, c)] + [
                _fit_binary(xt, y_train.level2[:, j], c) for j in range(y_train.level2.shape[1])
            ]
            p2 = np.stack([m.predict_proba(xv)[:, 1] for m in models[1:]], axis=1)
            score = level2_scores(y_valid.level2, p2 >= 0.5)["l2_micro_f1"]
            if score > best:
                best, self.models, self.chosen_c = score, models, c

    def probabilities(self, feats: BookFeatures) -> tuple[np.ndarray, np.ndarray]:
        x = self._matrix(feats)
        p1 = self.models[0].predict_proba(x)[:, 1]
        return p1, np.stack([m.predict_proba(x)[:, 1] for m in self.models[1:]], axis=1)
