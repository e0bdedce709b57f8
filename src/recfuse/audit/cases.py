"""Build an `AuditTable` from a named dataset and the user's group / target / context columns.

Derived targets, where a dataset has no ready column:
- goodreads-books ``genre``: Fiction vs Nonfiction from the genre shelves (books with neither are
  dropped; the data never has both);
- interaction datasets ``popularity``: whether an item's interaction count is above the median;
  ``category``: an Amazon item's second-level category (the first is the same for every item).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recfuse.audit.table import AuditTable, Task
from recfuse.data import CATALOG, load_dataset, load_table
from recfuse.errors import ConfigError, DataError


def _codes(values: pd.Series) -> tuple[np.ndarray, list[str]]:
    cat = pd.Categorical(values.astype(str))
    return np.asarray(cat.codes, dtype=np.int64), [str(c) for c in cat.categories]


def _is_missing(cell: object) -> bool:
    if isinstance(cell, list | tuple | np.ndarray):
        return len(cell) == 0
    return cell is None or (isinstance(cell, float) and np.isnan(cell)) or str(cell).strip() == ""


def _subsample_groups(frame: pd.DataFrame, group: str, max_groups: int, seed: int) -> pd.DataFrame:
    """Keep ``max_groups`` randomly chosen groups (whole groups, so probes stay meaningful)."""
    labels = pd.unique(frame[group].astype(str))
    if len(labels) <= max_groups:
        return frame
    keep = np.random.default_rng(seed).choice(labels, size=max_groups, replace=False)
    return frame[frame[group].astype(str).isin(set(keep))].reset_index(drop=True)


def _target(
    frame: pd.DataFrame, target: str, task: Task | None
) -> tuple[pd.DataFrame, np.ndarray, Task, list[str] | None]:
    """Drop rows without a target and encode it; numeric columns are regression by default."""
    frame = frame[~frame[target].map(_is_missing)].reset_index(drop=True)
    if frame.empty:
        raise DataError(f"target {target!r}: no row has a value")
    numeric = pd.api.types.is_numeric_dtype(frame[target])
    resolved: Task = task or ("regression" if numeric else "classification")
    if resolved == "regression":
        if not numeric:
            raise ConfigError(f"target {target!r} is not numeric; use --task classification")
        return frame, frame[target].to_numpy(dtype=np.float64), resolved, None
    codes, names = _codes(frame[target])
    if len(names) < 2:
        raise DataError(f"target {target!r} has a single class {names}; nothing to predict")
    return frame, codes, resolved, names


def _table_frame(dataset: str, data_dir: str | Path | None) -> tuple[pd.DataFrame, str]:
    """The dataset as one row per item, with its text (or SMILES) column name."""
    if CATALOG[dataset].kind == "table":
        frame = load_table(dataset, data_dir)
        if dataset == "goodreads-books":
            fiction = frame["genres"].map(lambda g: "Fiction" in g)
            nonfiction = frame["genres"].map(lambda g: "Nonfiction" in g)
            frame["genre"] = [
                "Fiction" if f else ("Nonfiction" if n else None)
                for f, n in zip(fiction, nonfiction, strict=True)
            ]
        text = "canonical_smiles" if "canonical_smiles" in frame.columns else "description"
        return frame, text
    data = load_dataset(dataset, data_dir)
    items = data.items.copy()
    counts = np.bincount(data.interactions["item"].to_numpy(), minlength=data.n_items)
    items["interactions"] = counts
    items["popularity"] = np.where(counts > np.median(counts), "popular", "not popular")
    if "categories" in items.columns:
        items["category"] = items["categories"].map(
            lambda c: (str(c).split(",") + ["", ""])[1].strip() if not _is_missing(c) else ""
        )
    return items, "__text__"


def load_audit_table(
    dataset: str,
    group: str,
    target: str,
    context: str | None = None,
    features: str = "auto",
    task: Task | None = None,
    max_groups: int | None = None,
    subsample_seed: int = 0,
    data_dir: str | Path | None = None,
) -> AuditTable:
    """An `AuditTable` for a named dataset (see `recfuse.data.CATALOG`).

    Args:
        group: the creator column (list cells = several creators).
        target: a column, or a derived target (module docstring).
        context: an optional column whose identity the group-only model may see (e.g. protein).
        features: ``auto`` (Morgan for SMILES, TF-IDF for text), ``morgan``, ``tfidf``, ``minilm``.
        max_groups: keep this many randomly chosen groups (seeded by ``subsample_seed``).
    """
    if dataset not in CATALOG:
        raise ConfigError(f"--dataset: unknown {dataset!r}; known: {', '.join(CATALOG)}")
    frame, text_col = _table_frame(dataset, data_dir)
    for col, flag in ((group, "--group"), (target, "--target"), (context, "--context")):
        if col is not None and col not in frame.columns:
            raise ConfigError(
                f"{flag}: {col!r} is not a column of {dataset} "
                f"(columns: {', '.join(map(str, frame.columns))})"
            )
    notes = []
    n_all = len(frame)
    frame, y, resolved, class_names = _target(frame, target, task)
    if len(frame) < n_all:
        notes.append(f"{n_all - len(frame)} of {n_all} rows without a {target!r} value dropped")
    if max_groups is not None:
        n_before, g_before = len(frame), frame[group].astype(str).nunique()
        frame = _subsample_groups(frame, group, max_groups, subsample_seed)
        if len(frame) < n_before:
            notes.append(
                f"subsampled {max_groups} of {g_before} groups (seed {subsample_seed}): "
                f"{len(frame)} of {n_before} rows"
            )
            frame, y, resolved, class_names = _target(frame, target, resolved)
    ctx_codes, ctx_names = _codes(frame[context]) if context else (None, None)
    kind = (
        features
        if features != "auto"
        else ("morgan" if text_col == "canonical_smiles" else "tfidf")
    )
    smiles = frame[text_col].astype(str).tolist() if text_col == "canonical_smiles" else None
    if text_col == "__text__":
        hidden = {group, target} | ({"categories"} if target == "category" else set())
        texts = _item_texts(frame, exclude=hidden)
    elif text_col in frame.columns and smiles is None:
        texts = _blurbs(frame, text_col)
    else:
        texts = None
    if kind == "morgan" and smiles is None:
        raise ConfigError(
            f"--features morgan needs SMILES; {dataset} has none (use tfidf or minilm)"
        )
    groups = [
        list(c) if isinstance(c, list | tuple | np.ndarray) else (None if _is_missing(c) else c)
        for c in frame[group]
    ]
    return AuditTable(
        name=dataset,
        groups=groups,
        target=y,
        task=resolved,
        feature_kind=kind,
        class_names=class_names,
        context=ctx_codes,
        context_names=ctx_names,
        texts=texts,
        smiles=smiles,
        columns={"group": group, "target": target, "context": context},
        notes=notes,
    )


def _blurbs(frame: pd.DataFrame, text_col: str) -> list[str]:
    """The blurb per row, the title where it is empty: the same text the HiGeMine part embeds,
    so MiniLM features come from its cache when it has run."""
    desc = frame[text_col].fillna("").astype(str).str.strip()
    if "title" not in frame.columns:
        return desc.tolist()
    title = frame["title"].fillna("").astype(str).str.strip()
    return [d if d else t for d, t in zip(desc, title, strict=True)]


def _item_texts(items: pd.DataFrame, exclude: set[str]) -> list[str]:
    """Item text from the usual text columns, leaving out the group and target columns: the
    probes must find the creator in the content, not read it from a field that names it."""
    cols = [
        c
        for c in ("title", "description", "categories", "genres", "brand")
        if c in items.columns and c not in exclude
    ]
    if not cols:
        raise DataError("no item text columns to build features from")
    parts = items[cols].fillna("").astype(str)
    return [". ".join(p for p in row if p.strip()) for row in parts.itertuples(index=False)]
