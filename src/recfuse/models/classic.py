"""Non-neural baselines: popularity, item-based kNN and EASE."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from recfuse.models.base import Recommender
from recfuse.split import Split


def history_matrix(histories: Sequence[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Binary [B, n_items] matrix of the given histories."""
    indptr = np.concatenate([[0], np.cumsum([len(h) for h in histories])])
    indices = np.concatenate(histories) if len(histories) else np.zeros(0, dtype=np.int64)
    data = np.ones(len(indices), dtype=np.float32)
    mat = sp.csr_matrix((data, indices, indptr), shape=(len(histories), n_items))
    mat.sum_duplicates()
    mat.data[:] = 1.0
    return mat


class Pop(Recommender):
    """Most popular items in the training data, the same list for everyone."""

    name = "Pop"

    def fit(self, split: Split, **kwargs: Any) -> Pop:
        super().fit(split)
        self.counts_ = np.bincount(split.train["item"].to_numpy(), minlength=split.n_items).astype(
            np.float32
        )
        return self

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        return np.tile(self.counts_, (len(users), 1))

    def fitted_tensors(self) -> dict[str, torch.Tensor]:
        return {"counts": torch.from_numpy(self.counts_)}

    def restore(
        self, tensors: dict[str, torch.Tensor], meta: dict[str, Any], split: Split, device: Any
    ) -> None:
        self.counts_ = tensors["counts"].numpy()


class ItemKNN(Recommender):
    """Item-based kNN with cosine similarity, keeping the ``k`` nearest neighbours per item.

    Scores are the sum of similarities between a candidate and the user's history items.
    """

    name = "ItemKNN"

    def __init__(self, k: int = 100, shrink: float = 10.0) -> None:
        self.k = k
        self.shrink = shrink

    def fit(self, split: Split, **kwargs: Any) -> ItemKNN:
        super().fit(split)
        x = split.train_matrix().astype(np.float32)
        co = (x.T @ x).tocsr()
        co.setdiag(0)
        co.eliminate_zeros()
        norms = np.sqrt(np.asarray(x.sum(0)).ravel())
        co = co.tocoo()
        sims = co.data / (norms[co.row] * norms[co.col] + self.shrink)
        sim = sp.csr_matrix((sims, (co.row, co.col)), shape=co.shape)
        self.sim_ = _keep_top_k_per_row(sim, self.k).T.tocsr()  # column j: neighbours of item j
        return self

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        hist = history_matrix(histories, self.n_items_)
        return np.asarray((hist @ self.sim_).todense(), dtype=np.float32)

    def fitted_tensors(self) -> dict[str, torch.Tensor]:
        sim = self.sim_
        return {
            "sim_data": torch.from_numpy(np.asarray(sim.data, dtype=np.float32)),
            "sim_indices": torch.from_numpy(sim.indices.astype(np.int64)),
            "sim_indptr": torch.from_numpy(sim.indptr.astype(np.int64)),
        }

    def fitted_meta(self) -> dict[str, Any]:
        return {"sim_shape": list(self.sim_.shape)}

    def restore(
        self, tensors: dict[str, torch.Tensor], meta: dict[str, Any], split: Split, device: Any
    ) -> None:
        parts = (tensors[f"sim_{k}"].numpy() for k in ("data", "indices", "indptr"))
        self.sim_ = sp.csr_matrix(tuple(parts), shape=tuple(meta["sim_shape"]))


def _keep_top_k_per_row(mat: sp.csr_matrix, k: int) -> sp.csr_matrix:
    mat = mat.tocsr()
    rows, cols, vals = [], [], []
    for i in range(mat.shape[0]):
        lo, hi = mat.indptr[i], mat.indptr[i + 1]
        if hi == lo:
            continue
        data, idx = mat.data[lo:hi], mat.indices[lo:hi]
        if hi - lo > k:
            keep = np.argpartition(-data, k)[:k]
            data, idx = data[keep], idx[keep]
        rows.append(np.full(len(idx), i))
        cols.append(idx)
        vals.append(data)
    if not rows:
        return sp.csr_matrix(mat.shape, dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=mat.shape
    )


class EASE(Recommender):
    """EASE (Steck, 2019): a closed-form item-item linear autoencoder with zero diagonal.

    B = I - P · diagMat(1 / diag(P)), with P = (XᵀX + λI)⁻¹. Memory and time grow with
    n_items² and n_items³ (19k items: ~1.5 GB, about a minute on 2 cores).
    """

    name = "EASE"

    def __init__(self, l2: float = 500.0) -> None:
        self.l2 = l2

    def fit(self, split: Split, **kwargs: Any) -> EASE:
        super().fit(split)
        x = split.train_matrix()
        gram = torch.as_tensor((x.T @ x).toarray(), dtype=torch.float32)
        gram.diagonal().add_(self.l2)
        p = torch.linalg.inv(gram)
        b = p / (-p.diagonal())
        b.diagonal().zero_()
        self.b_ = b
        return self

    def score(self, users: np.ndarray, histories: Sequence[np.ndarray]) -> np.ndarray:
        # X_hist @ B with X_hist a binary CSR matrix: SciPy adds B's rows in sorted item order,
        # exactly as a gather + index_add does, so the scores are bit-identical, but ~20-30x
        # faster (benchmarks/ease_scoring.py; docs/results/efficiency.md).
        return np.asarray(history_matrix(histories, self.n_items_) @ self.b_.numpy(), np.float32)

    def fitted_tensors(self) -> dict[str, torch.Tensor]:
        return {"b": self.b_}

    def restore(
        self, tensors: dict[str, torch.Tensor], meta: dict[str, Any], split: Split, device: Any
    ) -> None:
        self.b_ = tensors["b"]
