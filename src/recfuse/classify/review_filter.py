"""Phase 1 of HiGeMine: keep only the reviews that agree with the book's blurb (zero-shot).

Each review is scored by the cosine similarity of its embedding to its own book's blurb embedding;
a review about shipping, price or the seller lands far from any blurb and is dropped. The threshold
is either given, chosen on validation among candidates (`threshold_candidates`, drawn from the
training books' reviews only), or replaced by keeping the top k reviews per book.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

DEFAULT_THRESHOLD = 0.35
"""Cosine cut used when no validation part is at hand (the study and the CLI tune it instead);
on booklyn-books it lies between the 25th and 50th percentile of review-blurb similarity."""


@dataclass(frozen=True)
class Reviews:
    """All reviews of a book table, flattened.

    Attributes:
        book: [R] int row index of the reviewed book in the table.
        texts: R review texts.
        embeddings: [R, d] review embeddings.
    """

    book: np.ndarray
    texts: list[str]
    embeddings: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)


def flatten_reviews(review_lists: Sequence[Sequence[str]]) -> tuple[np.ndarray, list[str]]:
    """Per-book review lists -> ([R] book row index, R texts), empty reviews skipped."""
    book, texts = [], []
    for i, reviews in enumerate(review_lists):
        for text in reviews:
            if str(text).strip():
                book.append(i)
                texts.append(str(text))
    return np.asarray(book, dtype=np.int64), texts


def review_similarity(blurbs: np.ndarray, reviews: Reviews) -> np.ndarray:
    """[R] cosine similarity of each review to its own book's blurb (blurbs: [N, d])."""

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)

    return np.einsum("rd,rd->r", unit(reviews.embeddings), unit(blurbs[reviews.book]))


def keep_mask(
    similarity: np.ndarray,
    book: np.ndarray,
    threshold: float | None = None,
    top_k: int | None = None,
) -> np.ndarray:
    """[R] bool: reviews with ``similarity >= threshold``, or the ``top_k`` most similar per book.

    Neither given keeps every review (the unfiltered variant).
    """
    if threshold is not None and top_k is not None:
        raise ValueError("keep_mask: give threshold or top_k, not both")
    if top_k is not None:
        order = np.lexsort((-similarity, book))  # by book, most similar first
        rank = np.empty(len(book), dtype=np.int64)
        starts = np.searchsorted(book[order], book[order], side="left")
        rank[order] = np.arange(len(book)) - starts
        return rank < top_k
    if threshold is not None:
        return similarity >= threshold
    return np.ones(len(similarity), dtype=bool)


def pool_reviews(reviews: Reviews, keep: np.ndarray, n_books: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean embedding of each book's kept reviews -> ([N, d] zeros where none, [N] kept count)."""
    book = reviews.book[keep]
    counts = np.bincount(book, minlength=n_books).astype(np.float32)
    sums = np.zeros((n_books, reviews.embeddings.shape[1]), dtype=np.float32)
    np.add.at(sums, book, reviews.embeddings[keep])
    return sums / np.maximum(counts, 1.0)[:, None], counts


def threshold_candidates(
    similarity: np.ndarray,
    book: np.ndarray,
    train_books: np.ndarray,
    quantiles: Sequence[float] = (0.1, 0.25, 0.5, 0.75),
) -> list[float]:
    """Thresholds at quantiles of the similarities of TRAINING books' reviews only."""
    train_sims = similarity[np.isin(book, train_books)]
    if len(train_sims) == 0:
        return []
    return sorted({round(float(q), 4) for q in np.quantile(train_sims, quantiles)})


def choose_threshold(
    candidates: Sequence[float], valid_score: Callable[[float], float]
) -> tuple[float, dict[float, float]]:
    """The candidate with the best validation score (ties: the lower threshold, which keeps more)."""
    if not candidates:
        raise ValueError("choose_threshold: no candidates")
    scores = {float(t): float(valid_score(float(t))) for t in candidates}
    best = max(sorted(scores), key=lambda t: scores[t])
    return best, scores


def filter_report(
    reviews: Reviews,
    similarity: np.ndarray,
    keep: np.ndarray,
    titles: Sequence[str],
    n_examples: int = 3,
) -> dict[str, object]:
    """Counts kept/dropped and the most clear-cut examples of each (highest kept, lowest dropped)."""

    def example(r: int) -> dict[str, object]:
        return {
            "book": str(titles[reviews.book[r]]),
            "similarity": round(float(similarity[r]), 3),
            "review": reviews.texts[r][:400],
        }

    kept_idx = np.flatnonzero(keep)
    dropped_idx = np.flatnonzero(~keep)
    books_with = np.unique(reviews.book)
    books_kept = np.unique(reviews.book[keep])
    return {
        "reviews": len(reviews),
        "kept": int(keep.sum()),
        "dropped": int((~keep).sum()),
        "books_with_reviews": len(books_with),
        "books_with_kept_reviews": len(books_kept),
        "kept_examples": [
            example(r) for r in kept_idx[np.argsort(-similarity[kept_idx])][:n_examples]
        ],
        "dropped_examples": [
            example(r) for r in dropped_idx[np.argsort(similarity[dropped_idx])][:n_examples]
        ],
        "borderline_kept": [
            example(r) for r in kept_idx[np.argsort(similarity[kept_idx])][:n_examples]
        ],
    }
