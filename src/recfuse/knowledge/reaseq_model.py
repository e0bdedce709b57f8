"""ReaSeq's two uses of beyond-log interests: a retrieval channel and a user-side SASRec input.

* `VectorChannel` scores every item by the cosine between a user vector (the pooled interests,
  or the mean of the user's history item vectors as a content baseline) and the item vectors:
  a `Recommender`-shaped scorer, so the `Evaluator` ranks it over all items, seen items masked.
* `merged_hits`: does a channel *add* recall to a model? The list of ``k`` items is the model's
  top ``k - m`` plus the channel's best ``m`` items not already in it (seen items masked in
  both), compared with the model's own top ``k`` — the same list length.
* `InterestSASRec`: SASRec whose final user state gets ``W · interest_u`` added (``W`` a learned
  linear map, zero-initialised, so training starts from plain SASRec).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recfuse.models.sequential import SASRec, left_pad, training_windows
from recfuse.split import Split


class VectorChannel:
    """Scores ``user_vectors[u] @ item_vectors.T`` ([n_users, d] and [n_items, d]).

    With ``history_mean=True`` the user vector is instead the normalised mean of the visible
    history's item vectors (the content baseline channel).
    """

    name = "channel"

    def __init__(
        self, item_vectors: np.ndarray, user_vectors: np.ndarray | None, history_mean: bool = False
    ) -> None:
        self.items = np.asarray(item_vectors, dtype=np.float32)
        self.users = None if user_vectors is None else np.asarray(user_vectors, dtype=np.float32)
        self.history_mean = history_mean

    def user_vectors(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        if not self.history_mean:
            assert self.users is not None
            return self.users[np.asarray(users)]
        out = np.zeros((len(histories), self.items.shape[1]), dtype=np.float32)
        for row, hist in enumerate(histories):
            if len(hist):
                out[row] = self.items[np.asarray(hist)].mean(0)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.divide(out, norms, out=np.zeros_like(out), where=norms > 0)

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """[len(users), n_items] similarities."""
        return self.user_vectors(users, histories) @ self.items.T


def _masked(scores: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
    scores = np.array(scores, dtype=np.float32, copy=True)
    for row, hist in enumerate(histories):
        scores[row, np.asarray(hist, dtype=np.int64)] = -np.inf
    return scores


def merged_hits(
    model: Any,
    channel: Any,
    split: Split,
    k: int = 20,
    m: int = 5,
    batch_users: int = 512,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per test user: (users, hit of the model's top ``k``, hit of top ``k - m`` + channel ``m``).

    Ties are broken by item index (argsort, stable); the test item is the user's one
    leave-one-out target. Seen items (the test-stage history) never enter either list. A user
    whose channel scores are all equal (no interests inferred) keeps the model's own top ``k``.
    """
    targets = split.targets("test").sort_values("user", kind="stable")
    users = targets["user"].to_numpy()
    wanted = targets["item"].to_numpy()
    histories = split.histories("test")
    own, mixed = np.zeros(len(users), bool), np.zeros(len(users), bool)
    for lo in range(0, len(users), batch_users):
        us = users[lo : lo + batch_users]
        hist = [histories[u] for u in us]
        a = _masked(model.score(us, hist), hist)
        b = _masked(channel.score(us, hist), hist)
        top_a = np.argsort(-a, axis=1, kind="stable")[:, :k]
        order_b = np.argsort(-b, axis=1, kind="stable")[:, : k + m]
        finite = np.where(np.isfinite(b), b, np.nan)
        flat = np.nanmax(finite, axis=1) == np.nanmin(finite, axis=1)  # no signal (zero vector)
        for row in range(len(us)):
            base = list(top_a[row, : k - m])
            taken = set(base)
            extra = [i for i in order_b[row] if i not in taken][:m]
            if flat[row]:  # a user the channel knows nothing about keeps the model's own list
                extra = list(top_a[row, k - m : k])
            target = wanted[lo + row]
            own[lo + row] = target in top_a[row]
            mixed[lo + row] = target in base or target in extra
    return users, own.astype(float), mixed.astype(float)


class InterestNet(nn.Module):
    """A SASRec network plus a zero-initialised projection of each user's interest vector."""

    def __init__(self, backbone: nn.Module, interests: np.ndarray, dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.encoder = backbone.encoder  # the item encoder (shared, not copied)
        table = torch.as_tensor(interests, dtype=torch.float32)
        self.interest: torch.Tensor
        self.register_buffer("interest", table, persistent=False)
        self.project = nn.Linear(int(table.shape[1]), dim)
        nn.init.zeros_(self.project.weight)
        nn.init.zeros_(self.project.bias)

    def forward(
        self, seq: torch.Tensor, table: torch.Tensor, users: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Hidden states [B, L, dim]; with ``users`` [B], each row gets its user's projection."""
        hidden = self.backbone(seq, table)
        if users is None:
            return hidden
        return hidden + self.project(self.interest[users])[:, None, :]


class InterestSASRec(SASRec):
    """SASRec with a user-side input: ``interests`` [n_users, d] (training-period only).

    Only the full softmax loss (``ce``) is supported. Each training window knows its user, and
    scoring adds the user's projected interest to the last hidden state.
    """

    def __init__(self, interests: np.ndarray, **kwargs: Any) -> None:
        self.interests = np.asarray(interests, dtype=np.float32)
        super().__init__(**kwargs)

    def build(self, split: Split) -> nn.Module:
        return InterestNet(super().build(split), self.interests, self.dim)

    def training_tensors(self, split: Split) -> tuple[torch.Tensor, ...]:
        """inputs, targets [W, max_len] and each window's user [W]."""
        hist = split.histories("valid")
        users = np.array([u for u, h in enumerate(hist) if len(h) >= 2], dtype=np.int64)
        rows, x, y = training_windows(
            [hist[u] for u in users], self.max_len, split.n_items, self.training_stride()
        )
        return torch.as_tensor(x), torch.as_tensor(y), torch.as_tensor(users[rows])

    def loss(self, batch: Any) -> torch.Tensor:
        inputs, targets, owners = batch
        table = self.item_table()
        hidden = self.net_(inputs, table, owners)
        keep = targets < self.n_items_
        return F.cross_entropy(hidden[keep] @ table[:-1].T, targets[keep])

    @torch.no_grad()
    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        table = self.item_table()
        seq = torch.as_tensor(left_pad(histories, self.max_len, self.n_items_), device=self.device)
        owners = torch.as_tensor(np.array(users, dtype=np.int64), device=self.device)
        hidden = self.net_(seq, table, owners)[:, -1]
        return (hidden @ table[:-1].T).cpu().numpy()

    def get_params(self) -> dict[str, Any]:
        params = super().get_params()
        params.pop("interests", None)  # an input, not a hyperparameter
        return params


__all__ = ["InterestNet", "InterestSASRec", "VectorChannel", "merged_hits"]
