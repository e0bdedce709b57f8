"""`Recommender`: the one interface every model in recfuse meets (scikit-learn style)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from recfuse.split import Split


class Recommender(ABC):
    """A recommender: ``fit(split)`` on training data, then ``score`` users against all items.

    Hyper-parameters are constructor arguments; fitted state ends with an underscore. ``score``
    receives the histories the evaluator allows for the stage (training items at validation,
    training + validation items at test), so sequential and neighbourhood models use exactly what a
    deployed model would have, and nothing later.
    """

    #: short name used in tables and run folders
    name: str = "recommender"

    def fit(self, split: Split, **kwargs: Any) -> Recommender:
        """Learn from ``split.train`` (and use ``split.valid`` only for early stopping)."""
        self.n_items_ = split.n_items
        return self

    @abstractmethod
    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """Scores of every item for each user.

        Args:
            users: user indices, shape [B].
            histories: per user, the visible item indices in time order.
        Returns:
            float32 array [B, n_items]; higher is better. Seen items need not be masked here: the
            evaluator masks them.
        """

    def recommend(
        self, users: np.ndarray, histories: Sequence[np.ndarray], k: int = 10
    ) -> np.ndarray:
        """Top-``k`` unseen item indices per user, shape [B, k]."""
        scores = np.array(self.score(users, histories), dtype=np.float32, copy=True)
        for row, hist in enumerate(histories):
            scores[row, hist] = -np.inf
        top = np.argpartition(-scores, kth=min(k, scores.shape[1] - 1), axis=1)[:, :k]
        order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
        return np.take_along_axis(top, order, axis=1)

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, for run folders and tables."""
        return {
            k: v for k, v in vars(self).items() if not k.endswith("_") and not k.startswith("_")
        }
