"""Row splits for the audit: random, group-disjoint, Bemis–Murcko scaffold, near-duplicate.

Every split returns one part index per row: 0 = train, 1 = valid, 2 = test. Group-disjoint,
scaffold and similarity splits all go through `recfuse.split.assign_groups`, so rows that share a
group (or a scaffold, a near-duplicate cluster, or any member of a multi-group cell) always land
in the same part.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from recfuse.errors import ConfigError
from recfuse.split import assign_groups

DEFAULT_FRACTIONS = (0.7, 0.1, 0.2)


def _check(fractions: Sequence[float]) -> tuple[float, ...]:
    fr = tuple(float(f) for f in fractions)
    if len(fr) != 3 or any(f <= 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise ConfigError(f"split fractions {fr} must be three positive numbers summing to 1")
    return fr


def random_split(
    n_rows: int, fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0
) -> np.ndarray:
    """Part per row (int8, shape [n_rows]) from a seeded permutation, sized by ``fractions``."""
    fr = _check(fractions)
    order = np.random.default_rng(seed).permutation(n_rows)
    bounds = np.round(np.cumsum(fr)[:-1] * n_rows).astype(int)
    part = np.zeros(n_rows, dtype=np.int8)
    part[order[bounds[0] : bounds[1]]] = 1
    part[order[bounds[1] :]] = 2
    return part


def group_disjoint_split(
    groups: Sequence[object], fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0
) -> np.ndarray:
    """Part per row such that no group, nor any chain of co-grouped rows, spans two parts.

    A cell may hold a list of groups (co-authors); those groups are joined by connected
    components in `recfuse.split.group_components`.
    """
    return assign_groups(list(groups), _check(fractions), seed).astype(np.int8)


def bemis_murcko_scaffolds(smiles: Sequence[str]) -> list[str]:
    """Generic-free Bemis–Murcko scaffold SMILES per molecule ("" for acyclic molecules).

    Unparseable SMILES get a scaffold of their own (``"!invalid:<smiles>"``) so they never merge
    with a real scaffold. Needs RDKit (the ``recfuse[chem]`` extra).
    """
    from recfuse.audit.features import require_rdkit

    require_rdkit("scaffold split")
    from rdkit import Chem
    from rdkit.Chem.Scaffolds import MurckoScaffold

    cache: dict[str, str] = {}
    out = []
    for smi in smiles:
        if smi not in cache:
            mol = Chem.MolFromSmiles(smi)
            cache[smi] = (
                f"!invalid:{smi}"
                if mol is None
                else MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)
            )
        out.append(cache[smi])
    return out


def scaffold_split(
    smiles: Sequence[str],
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    scaffolds: Sequence[str] | None = None,
) -> np.ndarray:
    """Part per row such that every Bemis–Murcko scaffold lies on one side only.

    ``scaffolds`` may be passed precomputed (one per row) to skip RDKit.
    """
    keys = list(scaffolds) if scaffolds is not None else bemis_murcko_scaffolds(smiles)
    return group_disjoint_split(keys, fractions, seed)


def similarity_clusters(
    x: sp.csr_matrix,
    max_share: float = 0.05,
    thresholds: Sequence[float] = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    n_neighbors: int = 10,
) -> tuple[np.ndarray, float]:
    """Near-duplicate clusters: the scaffold's analog for any item features.

    Two rows are joined when one is among the other's ``n_neighbors`` nearest by cosine and
    their similarity reaches the threshold; clusters are the connected components. The
    threshold is the loosest of ``thresholds`` whose largest cluster holds at most ``max_share``
    of the rows (a looser one would chain most items into one cluster).

    Returns (cluster id per row [n_rows], the threshold used).
    """
    from scipy.sparse.csgraph import connected_components

    from recfuse.audit.neighbours import cosine_top_k

    n = x.shape[0]
    k = min(n_neighbors + 1, n)
    sims, idx = cosine_top_k(x, x, k)  # each row's own entry among them: a self-loop, harmless
    sim = sims.ravel()
    rows = np.repeat(np.arange(n), k)
    comp = np.arange(n)
    for threshold in thresholds:
        keep = sim >= threshold
        graph = sp.csr_matrix((np.ones(keep.sum()), (rows[keep], idx.ravel()[keep])), shape=(n, n))
        _, comp = connected_components(graph, directed=False)
        if np.bincount(comp).max() <= max(1, max_share * n):
            return comp, float(threshold)
    return comp, float(thresholds[-1])


def similarity_split(
    clusters: Sequence[int], fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0
) -> np.ndarray:
    """Part per row such that every near-duplicate cluster (`similarity_clusters`) lies on one
    side only: a series of books or a product line cannot straddle train and test."""
    return group_disjoint_split(list(clusters), fractions, seed)
