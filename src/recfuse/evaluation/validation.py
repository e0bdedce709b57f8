"""The validation score a trainer early-stops on, built by the trainer's caller.

`TorchRecommender.fit(split, validate=...)` takes the score from outside, so models/ never
imports evaluation/ (layers import downward only). This is the standard one: full ranking over
all items on the validation stage, seen items masked, optionally on a fixed user subset.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from recfuse.errors import ConfigError
from recfuse.evaluation.evaluator import Evaluator
from recfuse.models.base import Recommender
from recfuse.models.training import TorchRecommender, TrainConfig
from recfuse.split import Split


def validation_users(split: Split, train: TrainConfig) -> np.ndarray | None:
    """The users early stopping evaluates: all validation users (None), or — with
    ``train.valid_users`` below their count — a fixed random subset drawn with ``train.seed``."""
    if train.valid_users is None:
        return None
    candidates = np.unique(split.valid["user"].to_numpy())
    if train.valid_users >= len(candidates):
        return None
    return np.random.default_rng(train.seed).choice(candidates, train.valid_users, replace=False)


def validation_score(split: Split, train: TrainConfig) -> Callable[[Recommender], float]:
    """``score(model) -> float``: ``train.valid_metric`` (e.g. ``NDCG@10``) on ``split``'s
    validation stage under full ranking, over `validation_users`. Higher is better."""
    metric = train.valid_metric
    # evaluate at the cut-off the metric names (NDCG@10 -> 10); MRR has none and needs any one
    _, _, k = metric.partition("@")
    evaluator = Evaluator(
        split, ks=(int(k) if k.isdigit() else 10,), users=validation_users(split, train)
    )

    def score(model: Recommender) -> float:
        metrics = evaluator.evaluate(model, "valid").metrics
        if metric not in metrics:
            raise ConfigError(f"train.valid_metric: {metric!r} is not a metric the evaluator has")
        return float(metrics[metric])

    return score


def fit_validated(model: Recommender, split: Split) -> Recommender:
    """``model.fit(split)``, early-stopped on `validation_score` when ``model`` trains by epochs
    (a `TorchRecommender`, with its own `TrainConfig`); other models fit as they are."""
    if isinstance(model, TorchRecommender):
        return model.fit(split, validate=validation_score(split, model.train_config))
    return model.fit(split)
