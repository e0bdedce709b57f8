"""Item-to-item (I2I) recommenders: ItemCF, Swing and an embedding I2I, all on weighted edges.

An I2I model learns an item × item similarity ``S`` and scores a user by the similarity of every
candidate to the user's ``n_recent`` most recent items (``n_recent=1``: the I2I trigger protocol,
trigger = the last visible item). ``fit(split, edges=frame)`` trains on a refined edge frame
(columns ``user``, ``item`` and optionally ``weight``) instead of ``split.train``, so synthetic
rows can count less than real ones and dropped rows count not at all, while evaluation keeps the
original split (same histories, same masks) for every data arm.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recfuse.errors import ConfigError
from recfuse.models.base import Recommender
from recfuse.split import Split


def weighted_matrix(edges: pd.DataFrame, n_users: int, n_items: int) -> sp.csr_matrix:
    """User × item float32 CSR of edge weights (``weight`` column, default 1); a repeated
    (user, item) pair keeps its largest weight, so a duplicate never counts twice."""
    weight = edges["weight"].to_numpy(np.float32) if "weight" in edges else None
    if weight is None:
        weight = np.ones(len(edges), dtype=np.float32)
    frame = pd.DataFrame(
        {"u": edges["user"].to_numpy(), "i": edges["item"].to_numpy(), "w": weight}
    )
    frame = frame.groupby(["u", "i"], as_index=False)["w"].max()
    return sp.csr_matrix(
        (frame["w"].to_numpy(np.float32), (frame["u"].to_numpy(), frame["i"].to_numpy())),
        shape=(n_users, n_items),
    )


def top_k_rows(dense: np.ndarray, k: int) -> sp.csr_matrix:
    """Keep each row's ``k`` largest positive entries of a dense [r, n] block as CSR."""
    if k < dense.shape[1]:
        cut = np.argpartition(-dense, kth=k - 1, axis=1)[:, :k]
        kept = np.zeros_like(dense)
        np.put_along_axis(kept, cut, np.take_along_axis(dense, cut, axis=1), axis=1)
        dense = kept
    dense[dense < 0] = 0.0
    return sp.csr_matrix(dense)


class I2IRecommender(Recommender):
    """Base class: ``similarity_`` (item × item, CSR or dense) scored against recent items.

    Args:
        n_recent: how many of the user's latest visible items trigger candidates.
        decay: weight of the j-th most recent trigger is ``decay ** j``.
    """

    name = "i2i"

    def __init__(self, n_recent: int = 1, decay: float = 1.0) -> None:
        if n_recent < 1:
            raise ConfigError(f"n_recent must be >= 1, got {n_recent}")
        self.n_recent = n_recent
        self.decay = decay

    def fit(self, split: Split, edges: pd.DataFrame | None = None, **kwargs: Any) -> I2IRecommender:
        """Learn ``similarity_`` from ``edges`` (default: ``split.train``)."""
        super().fit(split)
        frame = split.train if edges is None else edges
        self.similarity_ = self._similarity(weighted_matrix(frame, split.n_users, split.n_items))
        return self

    def _similarity(self, matrix: sp.csr_matrix) -> sp.csr_matrix | np.ndarray:
        raise NotImplementedError

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """[B, n_items]: Σ_j decay^j · S[trigger_j] over the ``n_recent`` latest items."""
        out = self._triggers(histories) @ self.similarity_
        return np.asarray(out.toarray() if sp.issparse(out) else out, dtype=np.float32)

    def _triggers(self, histories: Sequence[np.ndarray]) -> sp.csr_matrix:
        """[B, n_items] CSR: weight decay^j on each user's j-th most recent item."""
        rows, cols, vals = [], [], []
        for r, hist in enumerate(histories):
            recent = np.asarray(hist[-self.n_recent :])[::-1]
            rows += [r] * len(recent)
            cols += recent.tolist()
            vals += [self.decay**j for j in range(len(recent))]
        return sp.csr_matrix(
            (np.asarray(vals, np.float32), (rows, cols)), shape=(len(histories), self.n_items_)
        )


class ItemCF(I2IRecommender):
    """Item-based CF on (weighted) co-occurrence ``C = Xᵀ X``.

    ``cosine``: C_ij / sqrt(n_i n_j); ``conditional``: P(j | i) = C_ij / (n_i^(1-alpha) n_j^alpha)
    (alpha=0: plain conditional probability; alpha>0 damps popular j). n_i = Σ_u x_ui².
    Keeps the ``k`` largest neighbours per item.
    """

    name = "ItemCF"

    def __init__(
        self, k: int = 200, mode: str = "cosine", alpha: float = 0.5, n_recent: int = 1,
        decay: float = 1.0,
    ) -> None:  # fmt: skip
        super().__init__(n_recent, decay)
        if mode not in ("cosine", "conditional"):
            raise ConfigError(f"ItemCF mode must be 'cosine' or 'conditional', got {mode!r}")
        self.k, self.mode, self.alpha = k, mode, alpha

    def _similarity(self, matrix: sp.csr_matrix, block: int = 2048) -> sp.csr_matrix:
        co = (matrix.T @ matrix).tocsr()  # sparse [n_items, n_items]
        norms = co.diagonal().astype(np.float32)
        safe = np.where(norms > 0, norms, 1.0)
        parts = []
        for lo in range(0, co.shape[0], block):  # dense blocks keep memory at block × n_items
            rows = co[lo : lo + block].toarray().astype(np.float32)
            rows[np.arange(len(rows)), np.arange(lo, lo + len(rows))] = 0.0
            if self.mode == "cosine":
                rows /= np.sqrt(safe[lo : lo + block])[:, None] * np.sqrt(safe)[None, :]
            else:
                rows /= (
                    safe[lo : lo + block, None] ** (1 - self.alpha) * safe[None, :] ** self.alpha
                )
            parts.append(top_k_rows(rows, self.k))
        return sp.vstack(parts).tocsr()


class Swing(I2IRecommender):
    """Swing (Yang et al., Alibaba 2020): items i, j are similar when *pairs* of users both
    chose them, discounted by how much else the pair shares:

        s(i, j) = Σ_{u < v ∈ U_i ∩ U_j} w_u w_v / (alpha + |I_u ∩ I_v|),  w_u = (|I_u| + a_u)^-½

    With weighted edges each pair's term is multiplied by x_ui x_vi x_uj x_vj (all 1 on real
    data). Vectorised per item over its (at most ``max_users``: a seeded random sample)
    users: s(i, ·) = ½ colsum((Coef X_U) ⊙ X_U) with Coef_uv the pair term, diagonal zero.
    """

    name = "Swing"

    def __init__(
        self, alpha: float = 1.0, user_alpha: float = 5.0, max_users: int = 100, k: int = 200,
        n_recent: int = 1, decay: float = 1.0, seed: int = 0,
    ) -> None:  # fmt: skip
        super().__init__(n_recent, decay)
        self.alpha, self.user_alpha, self.max_users = alpha, user_alpha, max_users
        self.k, self.seed = k, seed

    def _similarity(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        rng = np.random.default_rng(self.seed)
        binary = matrix.copy()
        binary.data[:] = 1.0
        user_w = (np.asarray(binary.sum(axis=1)).ravel() + self.user_alpha) ** -0.5
        by_item = matrix.tocsc()
        blocks = []
        for i in range(matrix.shape[1]):
            users = by_item.indices[by_item.indptr[i] : by_item.indptr[i + 1]]
            if len(users) > self.max_users:  # cost cap: a random sample of the item's users
                users = np.sort(rng.choice(users, self.max_users, replace=False))
            blocks.append(self._row(i, users, matrix, binary, user_w))
        return sp.vstack(blocks).tocsr()

    def _row(
        self, i: int, users: np.ndarray, matrix: sp.csr_matrix, binary: sp.csr_matrix,
        user_w: np.ndarray,
    ) -> sp.csr_matrix:  # fmt: skip
        """Row i of S as [1, n_items] CSR."""
        n_items = matrix.shape[1]
        if len(users) < 2:
            return sp.csr_matrix((1, n_items), dtype=np.float32)
        sub = matrix[users]  # [m, n_items] weights
        cols = np.unique(sub.indices)
        x = sub[:, cols].toarray()  # [m, c]
        xb = binary[users][:, cols].toarray()
        overlap = xb @ xb.T  # |I_u ∩ I_v|
        xi = x[:, np.searchsorted(cols, i)]
        coef = np.outer(user_w[users] * xi, user_w[users] * xi) / (self.alpha + overlap)
        np.fill_diagonal(coef, 0.0)
        row = 0.5 * ((coef @ x) * x).sum(axis=0)
        row[np.searchsorted(cols, i)] = 0.0
        dense = np.zeros((1, n_items), dtype=np.float32)
        dense[0, cols] = row
        return top_k_rows(dense, self.k)


class EmbeddingI2I(I2IRecommender):
    """I2I on learned item vectors: cosine of item factors from a truncated SVD of the weighted,
    user-degree-normalised user × item matrix (a linear two-tower model: user and item towers are
    the left and right singular vectors). Scores are trigger vectors · item vectors, so no
    n_items² matrix is ever held."""

    name = "EmbI2I"

    def __init__(self, dim: int = 64, n_recent: int = 1, decay: float = 1.0, seed: int = 0) -> None:
        super().__init__(n_recent, decay)
        self.dim, self.seed = dim, seed

    def _similarity(self, matrix: sp.csr_matrix) -> np.ndarray:
        """Unit item vectors [n_items, dim] (the similarity is their inner product)."""
        from scipy.sparse.linalg import svds

        degree = np.asarray(matrix.sum(axis=1)).ravel()
        scaled = sp.diags(1.0 / np.sqrt(np.maximum(degree, 1.0))) @ matrix
        k = min(self.dim, min(matrix.shape) - 1)
        v0 = np.random.default_rng(self.seed).standard_normal(min(scaled.shape))
        _, sing, vt = svds(scaled.astype(np.float64), k=k, v0=v0)
        vectors = (vt.T * np.sqrt(sing)).astype(np.float32)  # [n_items, dim]
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-8)
        return vectors

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        """[B, n_items]: Σ_j decay^j cos(trigger_j, item) (a trigger's own score is masked by
        the evaluator as a seen item)."""
        triggers = self._triggers(histories)  # sparse [B, n_items]
        return np.asarray((triggers @ self.similarity_) @ self.similarity_.T, dtype=np.float32)
