"""Predicted genres as an item-feature table for the recommenders (cross-fitted).

Every labeled book is predicted by a model that never trained on it: the labeled books are cut
into ``folds`` author-disjoint folds; fold k is predicted by a model trained on the other folds
(one of them held out as validation for early stopping, the review filter and the thresholds).
Unlabeled books (goodreads-books rows without a Fiction / Nonfiction shelf) are spread over the
folds' models round-robin.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from recfuse.atomic import atomic_path, write_json
from recfuse.classify.labels import LEVEL1_NAMES
from recfuse.classify.metrics import all_scores
from recfuse.classify.pipeline import (
    BookCorpus,
    choose_review_threshold,
    fit_method,
    review_features,
)
from recfuse.errors import ConfigError
from recfuse.split import assign_groups


def crossfit_genres(
    corpus: BookCorpus, method: str = "higemine", folds: int = 5, seed: int = 0
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """-> (item table with predicted genres, out-of-fold scores on the labeled books)."""
    if folds < 3:
        raise ConfigError("classify genres: folds must be >= 3 (train, valid and predicted folds)")
    labeled = np.flatnonzero(corpus.labels.labeled)
    fold = np.full(len(corpus.blurbs), -1, dtype=np.int64)
    fold[labeled] = assign_groups([corpus.authors[i] for i in labeled], [1 / folds] * folds, seed)
    unlabeled = np.flatnonzero(~corpus.labels.labeled)
    fold[unlabeled] = np.arange(len(unlabeled)) % folds
    n, c = len(corpus.blurbs), len(corpus.labels.genres)
    p1, l1 = np.zeros(n, dtype=np.float32), np.zeros(n, dtype=np.int8)
    p2, l2 = np.zeros((n, c), dtype=np.float32), np.zeros((n, c), dtype=np.uint8)
    thresholds = []
    for k in tqdm(range(folds), desc=f"cross-fit {corpus.dataset}", unit="fold"):
        parts = np.full(n, -1, dtype=np.int8)
        parts[labeled] = 0
        parts[labeled[fold[labeled] == (k + 1) % folds]] = 1
        parts[fold == k] = 2  # predicted only; unlabeled rows of fold k too
        threshold = None
        if corpus.reviews is not None:
            threshold, _ = choose_review_threshold(corpus, parts, seed, method)
            thresholds.append(threshold)
        feats = review_features(corpus, "filtered" if threshold is not None else "none", threshold)
        model = fit_method(method, corpus, feats, parts, seed)
        rows = np.flatnonzero(parts == 2)
        pred = model.predict(feats.take(rows))
        p1[rows], l1[rows], p2[rows], l2[rows] = pred.p1, pred.l1, pred.p2, pred.l2
    genres = corpus.labels.genres
    table = pd.DataFrame({
        "book_id": corpus.labels.book_ids,
        "title": corpus.table["title"].astype(str).to_numpy(),
        "level1": np.array(LEVEL1_NAMES)[l1],
        "p_fiction": p1,
        "genres": [[genres[j] for j in np.flatnonzero(row)] for row in l2],
        "labeled": corpus.labels.labeled,
        "fold": fold,
    })  # fmt: skip
    probs = pd.DataFrame(p2, columns=[f"p_genre:{g}" for g in genres])
    table = pd.concat([table, probs], axis=1)
    t = corpus.targets().take(labeled)
    scores = all_scores(t.level1, t.level2, l1[labeled], l2[labeled])
    report = {"dataset": corpus.dataset, "method": method, "folds": folds, "seed": seed,
              "out_of_fold_scores": scores, "review_thresholds": thresholds,
              "books": n, "labeled_books": len(labeled), "genres": list(genres)}  # fmt: skip
    return table, report


def write_item_genres(table: pd.DataFrame, report: dict[str, Any], out: str | Path) -> Path:
    """Write the table (Parquet) and its report (``<out>.json``), each atomically."""
    out = Path(out)
    with atomic_path(out) as tmp:
        table.to_parquet(tmp, index=False)
    write_json(out.with_suffix(out.suffix + ".json"), report)
    return out
