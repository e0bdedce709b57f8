"""Collaborative keywords (MMSRARec step 2): the keywords of the items most co-consumed with a
user's recent history, as a retrieved context block for the LM recommender.

Co-consumption is ItemCF (cosine on the training interactions of the split only: `ItemCF.fit`
reads ``split.train``), so no valid/test interaction shapes the context. The user's own history
is excluded from the neighbours.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recfuse.models.i2i import ItemCF
from recfuse.split import Split


class CollaborativeKeywords:
    """``history -> [keyword text of each of the k most co-consumed items]``.

    Args:
        split: the split; its training interactions define co-consumption.
        keywords: one keyword text per item index.
        k: neighbours returned; n_recent: the latest history items that trigger them.
    """

    def __init__(
        self, split: Split, keywords: Sequence[str], k: int = 3, n_recent: int = 3
    ) -> None:
        self.model = ItemCF(k=100, n_recent=n_recent).fit(split)
        self.keywords = list(keywords)
        self.k = k

    def items(self, history: np.ndarray) -> list[int]:
        """The ``k`` top co-consumed items for ``history`` (none of them in it); fewer when the
        history's items have fewer neighbours with a positive score."""
        if len(history) == 0:
            return []
        scores = self.model.score(np.zeros(1, dtype=np.int64), [np.asarray(history)])[0]
        scores[np.asarray(history)] = -np.inf
        top = np.argsort(-scores, kind="stable")[: self.k]
        return [int(i) for i in top if scores[i] > 0]

    def __call__(self, history: np.ndarray) -> list[str]:
        return [self.keywords[i] for i in self.items(history)]
