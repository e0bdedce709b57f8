"""`BookFeatures`: what every genre classifier sees of a book (blurb path + review path + text)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BookFeatures:
    """Per-book inputs, aligned by row.

    Attributes:
        blurb: [N, d] blurb embeddings (frozen encoder).
        reviews: [N, d] mean embedding of the book's (kept) reviews; zeros where it has none.
        review_count: [N] number of (kept) reviews behind ``reviews``.
        texts: N strings for bag-of-words baselines: the blurb followed by the kept reviews.
    """

    blurb: np.ndarray
    reviews: np.ndarray
    review_count: np.ndarray
    texts: list[str]

    def __len__(self) -> int:
        return len(self.texts)

    def take(self, idx: np.ndarray) -> BookFeatures:
        """Rows ``idx`` only (a classifier given a part never holds the other parts)."""
        idx = np.asarray(idx)
        return BookFeatures(
            self.blurb[idx], self.reviews[idx], self.review_count[idx], [self.texts[i] for i in idx]
        )

    def dense(self) -> np.ndarray:
        """[N, 2d + 1]: blurb, pooled reviews and a has-reviews flag, for linear baselines."""
        has = (self.review_count > 0).astype(np.float32)[:, None]
        return np.concatenate([self.blurb, self.reviews, has], axis=1).astype(np.float32)


def blurb_only(blurb: np.ndarray, blurbs_text: list[str]) -> BookFeatures:
    """Features without any review (goodreads-books, or the blurb-only ablation)."""
    n = len(blurbs_text)
    return BookFeatures(
        blurb.astype(np.float32),
        np.zeros_like(blurb, dtype=np.float32),
        np.zeros(n, dtype=np.float32),
        list(blurbs_text),
    )


def with_reviews(
    blurb: np.ndarray,
    blurbs_text: list[str],
    pooled: np.ndarray,
    counts: np.ndarray,
    review_book: np.ndarray,
    review_texts: list[str],
    keep: np.ndarray,
) -> BookFeatures:
    """Features with the kept reviews (``keep`` [R] bool over the flattened reviews)."""
    texts = list(blurbs_text)
    for b, t, k in zip(review_book.tolist(), review_texts, keep.tolist(), strict=True):
        if k:
            texts[b] = texts[b] + "\n" + t
    return BookFeatures(
        blurb.astype(np.float32), pooled.astype(np.float32), counts.astype(np.float32), texts
    )
