"""From a book table to fitted genre classifiers: embeddings, review filter, parts, methods.

`load_corpus` does everything that does not depend on a split (embeddings are cached by
`recfuse.features.embed.embed`); `review_features` and `choose_review_threshold` depend on the split's
training / validation parts only; `fit_method` trains one method on train, tunes on valid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recfuse.classify.baselines import LinearOvR, flat_mlp, hierarchical_mlp
from recfuse.classify.book_features import BookFeatures, blurb_only, with_reviews
from recfuse.classify.labels import (
    LEVEL1_NAMES,
    GenreLabels,
    author_groups,
    blurb_texts,
    make_labels,
)
from recfuse.classify.metrics import level2_scores
from recfuse.classify.model import GenreClassifier, HiGeMineClassifier, Targets
from recfuse.classify.review_filter import (
    Reviews,
    choose_threshold,
    flatten_reviews,
    keep_mask,
    pool_reviews,
    review_similarity,
    threshold_candidates,
)
from recfuse.data import load_table
from recfuse.errors import ConfigError
from recfuse.features.embed import embed

METHODS = ("higemine", "hier_nograph", "flat_mlp", "flat_logreg", "tfidf_logreg")
"""higemine = dual-path + hierarchical + label graph; the rest are the baselines."""

REVIEW_MODES = ("none", "all", "filtered")


@dataclass
class BookCorpus:
    """One book table with its labels and frozen embeddings (split-independent)."""

    dataset: str
    table: pd.DataFrame
    labels: GenreLabels
    blurbs: list[str]
    blurb_emb: np.ndarray  # [N, d]
    label_emb: np.ndarray  # [2 + C, d]: Nonfiction, Fiction, genres
    authors: list[object]
    reviews: Reviews | None = None
    similarity: np.ndarray | None = None  # [R] review-blurb cosine

    def targets(self) -> Targets:
        return Targets(self.labels.level1, self.labels.level2)


def load_corpus(dataset: str, model: str = "minilm", limit: int | None = None) -> BookCorpus:
    """Load ``dataset`` (goodreads-books or booklyn-books), label it and embed blurbs/reviews/labels.

    ``limit`` keeps the first rows only (tests).
    """
    table = load_table(dataset)
    if limit is not None:
        table = table.iloc[:limit].reset_index(drop=True)
    labels = make_labels(dataset, table)
    blurbs = blurb_texts(table)
    corpus = BookCorpus(
        dataset,
        table,
        labels,
        blurbs,
        embed(blurbs, model),
        embed([*LEVEL1_NAMES, *labels.genres], model),
        author_groups(dataset, table),
    )
    if "reviews" in table.columns:
        book, texts = flatten_reviews(table["reviews"].tolist())
        if texts:
            corpus.reviews = Reviews(book, texts, embed(texts, model))
            corpus.similarity = review_similarity(corpus.blurb_emb, corpus.reviews)
    return corpus


def review_features(corpus: BookCorpus, mode: str, threshold: float | None = None) -> BookFeatures:
    """Features with no reviews, all reviews, or the reviews passing ``threshold``."""
    if mode not in REVIEW_MODES:
        raise ConfigError(f"review mode must be one of {REVIEW_MODES}, not {mode!r}")
    if mode == "none" or corpus.reviews is None:
        return blurb_only(corpus.blurb_emb, corpus.blurbs)
    if mode == "filtered" and threshold is None:
        raise ConfigError("review mode 'filtered' needs a threshold")
    assert corpus.similarity is not None
    keep = keep_mask(
        corpus.similarity, corpus.reviews.book, threshold if mode == "filtered" else None
    )
    pooled, counts = pool_reviews(corpus.reviews, keep, len(corpus.blurbs))
    return with_reviews(
        corpus.blurb_emb,
        corpus.blurbs,
        pooled,
        counts,
        corpus.reviews.book,
        corpus.reviews.texts,
        keep,
    )


def make_method(name: str, corpus: BookCorpus, seed: int, use_reviews: bool) -> GenreClassifier:
    """A fresh, unfitted classifier for method ``name`` (see `METHODS`)."""
    single = corpus.labels.single_label
    if name == "higemine":
        return HiGeMineClassifier(label_embeddings=corpus.label_emb, seed=seed,
                                  use_reviews=use_reviews, single_label=single)  # fmt: skip
    if name == "hier_nograph":
        return hierarchical_mlp(seed=seed, use_reviews=use_reviews, single_label=single)
    if name == "flat_mlp":
        return flat_mlp(seed=seed, use_reviews=use_reviews, single_label=single)
    if name == "flat_logreg":
        return LinearOvR(features="dense", single_label=single)
    if name == "tfidf_logreg":
        return LinearOvR(features="tfidf", single_label=single)
    raise ConfigError(f"classify method must be one of {METHODS}, not {name!r}")


def fit_method(
    name: str, corpus: BookCorpus, feats: BookFeatures, parts: np.ndarray, seed: int
) -> GenreClassifier:
    """Fit on part 0, tune thresholds on part 1; the classifier is never handed part 2."""
    targets = corpus.targets()
    train, valid = np.flatnonzero(parts == 0), np.flatnonzero(parts == 1)
    use_reviews = bool((feats.review_count > 0).any())
    model = make_method(name, corpus, seed, use_reviews)
    return model.fit(feats.take(train), targets.take(train), feats.take(valid), targets.take(valid))


def choose_review_threshold(
    corpus: BookCorpus, parts: np.ndarray, seed: int, method: str = "higemine"
) -> tuple[float, dict[float, float]]:
    """Filter threshold with the best VALIDATION Level 2 micro F1 of ``method``.

    Candidates are quantiles of the training books' review similarities; the validation score of
    each candidate is the fitted model's micro F1 on the validation part.
    """
    assert corpus.reviews is not None and corpus.similarity is not None
    candidates = threshold_candidates(
        corpus.similarity, corpus.reviews.book, np.flatnonzero(parts == 0)
    )
    valid = np.flatnonzero(parts == 1)
    y_valid = corpus.targets().take(valid)

    def valid_score(threshold: float) -> float:
        feats = review_features(corpus, "filtered", threshold)
        model = fit_method(method, corpus, feats, parts, seed)
        return level2_scores(y_valid.level2, model.predict(feats.take(valid)).l2)["l2_micro_f1"]

    return choose_threshold(candidates, valid_score)


def default_review_mode(corpus: BookCorpus) -> str:
    return "filtered" if corpus.reviews is not None else "none"
