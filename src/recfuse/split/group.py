"""Group-disjoint assignment shared by interaction splits, classification splits and audits."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components


def group_components(groups: Sequence[object]) -> np.ndarray:
    """Component id per row: rows sharing any group are in one component.

    A row's cell is a single group label or a list/tuple/set of labels (co-authors); all labels in
    one cell are joined, so a book by A and B ties every book of A to every book of B.
    """
    labels: dict[object, int] = {}
    rows, cols = [], []
    for i, cell in enumerate(groups):
        members = (
            list(cell) if isinstance(cell, list | tuple | set | frozenset | np.ndarray) else [cell]
        )
        if not members:
            members = [("__row__", i)]  # a row with no group is its own group
        for g in members:
            rows.append(i)
            cols.append(labels.setdefault(g, len(labels)))
    n = len(groups)
    incidence = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, len(labels)))
    # Rows are connected through shared labels: components of the bipartite row–label graph.
    bipartite = sp.bmat([[None, incidence], [incidence.T, None]]).tocsr()
    _, comp = connected_components(bipartite, directed=False)
    return comp[:n]


def assign_groups(
    groups: Sequence[object], fractions: Sequence[float], seed: int = 0
) -> np.ndarray:
    """Part index per row (0..len(fractions)-1) so that no component spans two parts.

    Components are shuffled under ``seed`` and filled into parts greedily by row count, so each
    part holds close to its fraction of the rows.
    """
    comp = group_components(groups)
    sizes = np.bincount(comp)
    order = np.random.default_rng(seed).permutation(len(sizes))
    targets = np.cumsum(np.asarray(fractions, dtype=float)) * len(comp)
    part_of_comp = np.zeros(len(sizes), dtype=np.int8)
    filled, k = 0.0, 0
    for c in order:
        while k < len(targets) - 1 and filled >= targets[k]:
            k += 1
        part_of_comp[c] = k
        filled += sizes[c]
    return part_of_comp[comp]
