"""Label co-occurrence graph (ML-GCN, Chen et al. 2019) and the GCN that turns label embeddings
into per-label classifiers.

Nodes are the two Level 1 labels (Nonfiction, Fiction) followed by the C Level 2 genres, so a
genre is tied to its parent through the graph too (booklyn-books is single-label at Level 2: its
genre-genre co-occurrences are empty and only the parent edges carry structure).

The graph is built from TRAINING labels only: `build_label_graph` takes the training rows'
labels and nothing else, and the classifier calls it with exactly those rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class LabelGraph:
    """A normalized label graph.

    Attributes:
        conditional: [L, L] P(label j | label i) estimated on the training rows.
        adjacency: [L, L] binarized (threshold ``tau``), re-weighted (``p``) adjacency with self loops.
        normalized: [L, L] D^-1/2 A D^-1/2 of ``adjacency``, what the GCN multiplies by.
        counts: [L] training count of each label.
    """

    conditional: np.ndarray
    adjacency: np.ndarray
    normalized: np.ndarray
    counts: np.ndarray


def node_labels(level1: np.ndarray, level2: np.ndarray) -> np.ndarray:
    """[N, 2 + C] multi-hot over (Nonfiction, Fiction, genres...) for the graph."""
    l1 = np.stack([level1 == 0, level1 == 1], axis=1)
    return np.concatenate([l1, level2.astype(bool)], axis=1).astype(np.float64)


def build_label_graph(train_labels: np.ndarray, tau: float = 0.4, p: float = 0.2) -> LabelGraph:
    """ML-GCN correlation matrix from the TRAINING rows' multi-hot labels [N_train, L].

    1. Conditional probabilities P(j | i) = M_ij / N_i from co-occurrence counts M.
    2. Binarize at ``tau`` (drops rare, noisy co-occurrences).
    3. Re-weight: a label keeps ``1 - p`` on itself and spreads ``p`` over its neighbours, which
       stops the GCN from over-smoothing all classifiers into one (ML-GCN eq. 8). A label with no
       neighbour keeps weight 1 on itself.
    4. Symmetric normalization D^-1/2 A D^-1/2 with D the row sums.
    """
    y = np.asarray(train_labels, dtype=np.float64)
    counts = y.sum(0)  # [L]
    co = y.T @ y  # [L, L]
    np.fill_diagonal(co, 0.0)
    conditional = co / np.maximum(counts, 1.0)[:, None]
    binary = (conditional >= tau).astype(np.float64)
    neighbours = binary.sum(1, keepdims=True)
    adjacency = np.where(neighbours > 0, p * binary / np.maximum(neighbours, 1.0), 0.0)
    np.fill_diagonal(adjacency, np.where(neighbours[:, 0] > 0, 1.0 - p, 1.0))
    degree = adjacency.sum(1)
    inv_sqrt = 1.0 / np.sqrt(np.maximum(degree, 1e-12))
    normalized = inv_sqrt[:, None] * adjacency * inv_sqrt[None, :]
    return LabelGraph(conditional, adjacency, normalized, counts)


class LabelGCN(nn.Module):
    """Two graph-convolution layers: label embeddings [L, e] -> per-label classifiers [L, out_dim].

    H1 = LeakyReLU(Â H0 W0), W = Â H1 W1 (ML-GCN); Â is fixed (not learned).
    """

    def __init__(
        self, label_embeddings: np.ndarray, graph: LabelGraph, out_dim: int, hidden: int = 256
    ):
        super().__init__()
        self.register_buffer("h0", torch.as_tensor(label_embeddings, dtype=torch.float32))
        self.register_buffer("adj", torch.as_tensor(graph.normalized, dtype=torch.float32))
        self.w0 = nn.Linear(label_embeddings.shape[1], hidden, bias=False)
        self.w1 = nn.Linear(hidden, out_dim, bias=False)
        self.act = nn.LeakyReLU(0.2)

    def forward(self) -> torch.Tensor:
        """-> [L, out_dim] classifier vectors."""
        h1 = self.act(self.adj @ self.w0(self.h0))
        return self.adj @ self.w1(h1)
