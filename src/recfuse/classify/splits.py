"""Train / valid / test parts for the book tables, via `recfuse.split.assign_groups`.

``random``: every book is its own group. ``author``: books sharing an author never straddle two
parts, and a book with co-authors joins all their books into one group (the Clever-Hans control:
a model cannot score by recognising an author it saw in training).
"""

from __future__ import annotations

import numpy as np

from recfuse.errors import ConfigError
from recfuse.split import assign_groups

SPLIT_KINDS = ("random", "author")
FRACTIONS = (0.7, 0.1, 0.2)


def split_parts(
    kind: str,
    authors: list[object],
    seed: int,
    labeled: np.ndarray | None = None,
    fractions: tuple[float, float, float] = FRACTIONS,
) -> np.ndarray:
    """Part per row: 0 train, 1 valid, 2 test, -1 unlabeled (kept out of every part).

    Args:
        kind: ``random`` or ``author``.
        authors: per row an author name or a list of co-authors.
        seed: shuffles the groups.
        labeled: [N] bool; unlabeled rows get -1 and do not count toward the fractions.
    """
    if kind not in SPLIT_KINDS:
        raise ConfigError(f"split kind must be one of {SPLIT_KINDS}, not {kind!r}")
    n = len(authors)
    mask = np.ones(n, dtype=bool) if labeled is None else np.asarray(labeled, dtype=bool)
    rows = np.flatnonzero(mask)
    groups: list[object] = (
        [int(i) for i in rows] if kind == "random" else [authors[i] for i in rows]
    )
    parts = np.full(n, -1, dtype=np.int8)
    parts[rows] = assign_groups(groups, fractions, seed)
    return parts
