"""`AuditTable`: one row per item with its group(s), target, optional context and features."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recfuse.audit.features import (
    FEATURE_KINDS,
    minilm_features,
    morgan_fingerprints,
    tfidf_features,
)
from recfuse.errors import ConfigError

Task = Literal["regression", "classification"]


def first_group(cell: object) -> object | None:
    """The label a who-made-it probe predicts for a cell: the first of several, None if empty."""
    if isinstance(cell, list | tuple | np.ndarray):
        return cell[0] if len(cell) else None
    if cell is None or (isinstance(cell, float) and np.isnan(cell)) or cell == "":
        return None
    return cell


@dataclass
class AuditTable:
    """Items to audit.

    Attributes:
        name: dataset name (for reports).
        groups: per row, a group label or a list of labels (co-authors); empty/None = no group.
        target: [n_rows] float (regression) or int class codes (classification).
        task: ``regression`` or ``classification``.
        class_names: names of the class codes (classification only).
        context: [n_rows] int codes of the context (e.g. the protein target) or None.
        context_names: names of the context codes.
        feature_kind: ``morgan`` (needs ``smiles``), ``tfidf`` or ``minilm`` (need ``texts``), or
            ``precomputed`` (needs ``matrix``: the user's own item features).
        texts / smiles: the raw item content the features are built from.
        columns: the group / target / context column names, for the report.
        notes: how the table was derived (subsampling, dropped rows), for the report.
    """

    name: str
    groups: list[object]
    target: np.ndarray
    task: Task
    feature_kind: str
    class_names: list[str] | None = None
    context: np.ndarray | None = None
    context_names: list[str] | None = None
    texts: list[str] | None = None
    smiles: list[str] | None = None
    matrix: sp.csr_matrix | None = None
    columns: dict[str, str | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    _fixed_features: sp.csr_matrix | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = len(self.groups)
        if len(self.target) != n or (self.context is not None and len(self.context) != n):
            raise ConfigError(f"{self.name}: groups, target and context lengths differ")
        if self.feature_kind not in FEATURE_KINDS:
            raise ConfigError(f"features: unknown {self.feature_kind!r}; known: {FEATURE_KINDS}")
        source = {"morgan": self.smiles, "precomputed": self.matrix}.get(
            self.feature_kind, self.texts
        )
        n_inputs = (
            -1 if source is None else (source.shape[0] if hasattr(source, "shape") else len(source))
        )
        if n_inputs != n:
            raise ConfigError(f"{self.name}: features {self.feature_kind!r} need one input per row")

    @property
    def n_rows(self) -> int:
        return len(self.groups)

    @property
    def n_contexts(self) -> int:
        return 0 if self.context is None else int(self.context.max()) + 1

    @property
    def n_classes(self) -> int:
        return 0 if self.task == "regression" else int(self.target.max()) + 1

    def features(self, fit_rows: np.ndarray) -> sp.csr_matrix:
        """Item features CSR [n_rows, d]; anything fitted (TF-IDF) sees only ``fit_rows``."""
        if self.feature_kind == "tfidf":
            assert self.texts is not None
            return tfidf_features(self.texts, fit_rows)
        if self._fixed_features is None:  # fingerprints and frozen embeddings need no fitting
            if self.feature_kind == "precomputed":
                self._fixed_features = sp.csr_matrix(self.matrix, dtype=np.float32)
            elif self.feature_kind == "morgan":
                assert self.smiles is not None
                self._fixed_features = morgan_fingerprints(self.smiles)
            else:
                assert self.texts is not None
                self._fixed_features = minilm_features(self.texts)
        return self._fixed_features

    def group_labels(self, min_rows: int = 2) -> tuple[np.ndarray, list[object]]:
        """Class code per row for the who-made-it probe, and the class names.

        The label is a cell's first group. Groups with fewer than ``min_rows`` rows get code -1:
        no split can put such a group on both sides, so it can never be named from held-out rows.
        """
        labels = pd.Series([first_group(c) for c in self.groups], dtype=object)
        counts = labels.value_counts()
        kept = counts[counts >= min_rows].index
        names = sorted(kept, key=str)
        code_of = {g: i for i, g in enumerate(names)}
        codes = np.array([code_of.get(g, -1) if g is not None else -1 for g in labels], np.int64)
        return codes, names
