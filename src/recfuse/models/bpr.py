"""BPR-MF (Rendle et al., 2009): matrix factorisation with the pairwise BPR loss."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from recfuse.models.training import TorchRecommender, TrainConfig
from recfuse.split import Split


class BPRNet(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int) -> None:
        super().__init__()
        self.users = nn.Embedding(n_users, dim)
        self.items = nn.Embedding(n_items, dim)
        nn.init.normal_(self.users.weight, std=0.1)
        nn.init.normal_(self.items.weight, std=0.1)


class BPR(TorchRecommender):
    """Args: dim, reg (L2 on the embeddings of each batch), train settings."""

    name = "BPR"
    needs_known_user = True  # a user is an embedding row: a new user's history has none

    def __init__(
        self,
        dim: int = 64,
        reg: float = 1e-4,
        train: TrainConfig | None = None,
        **train_kwargs: Any,
    ) -> None:
        train_kwargs.setdefault("batch_size", 4096)
        train_kwargs.setdefault("lr", 5e-3)
        super().__init__(train, **train_kwargs)
        self.dim, self.reg = dim, reg

    def build(self, split: Split) -> nn.Module:
        self._pairs = split.train[["user", "item"]].to_numpy()
        self._seen = split.train_matrix()
        return BPRNet(split.n_users, split.n_items, self.dim)

    def batches(self, split: Split, rng: np.random.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
        order = rng.permutation(len(self._pairs))
        for lo in range(0, len(order), self.train_config.batch_size):
            users, pos = self._pairs[order[lo : lo + self.train_config.batch_size]].T
            neg = rng.integers(0, split.n_items, len(users))
            # resample negatives the user has seen (one pass; the rare remaining hits are noise)
            clash = np.asarray(self._seen[users, neg]).ravel() > 0
            neg[clash] = rng.integers(0, split.n_items, int(clash.sum()))
            yield torch.as_tensor(users), torch.as_tensor(pos), torch.as_tensor(neg)

    def loss(self, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        users, pos, neg = batch
        u, i, j = self.net_.users(users), self.net_.items(pos), self.net_.items(neg)
        margin = (u * (i - j)).sum(-1)
        reg = self.reg * (u.pow(2).sum() + i.pow(2).sum() + j.pow(2).sum()) / len(users)
        return -F.logsigmoid(margin).mean() + reg

    @torch.no_grad()
    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        u = self.net_.users(torch.as_tensor(np.asarray(users), device=self.device))
        return (u @ self.net_.items.weight.T).cpu().numpy()
