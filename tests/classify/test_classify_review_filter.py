import numpy as np
import pytest

from recfuse.classify.review_filter import (
    DEFAULT_THRESHOLD,
    Reviews,
    choose_threshold,
    filter_report,
    flatten_reviews,
    keep_mask,
    pool_reviews,
    review_similarity,
    threshold_candidates,
)
from recfuse.features.embed import embed

BLURB = (
    "In a fog-bound Victorian London, a young widow turns detective when her brother is accused of "
    "poisoning a wealthy banker. Following a trail of forged letters through gaslit alleys and "
    "gentlemen's clubs, she must unmask the real killer before the hangman's noose closes."
)
PARAPHRASE = (
    "A widow in Victorian London becomes an amateur sleuth to prove her brother did not poison the "
    "banker; she follows forged letters through the city's clubs and alleys to find the murderer."
)
SHIPPING = (
    "The package arrived two weeks late and the box was crushed. The cover was torn and several "
    "pages were water damaged. Terrible shipping, I want a refund from this seller."
)


@pytest.mark.slow
def test_filter_keeps_paraphrase_and_drops_shipping_damage() -> None:
    emb = embed([BLURB, PARAPHRASE, SHIPPING])
    reviews = Reviews(np.array([0, 0]), [PARAPHRASE, SHIPPING], emb[1:])
    sim = review_similarity(emb[:1], reviews)
    assert sim[0] > sim[1]
    assert keep_mask(sim, reviews.book, threshold=DEFAULT_THRESHOLD).tolist() == [True, False]
    assert keep_mask(sim, reviews.book, top_k=1).tolist() == [True, False]
    report = filter_report(reviews, sim, np.array([True, False]), ["The Widow's Trail"])
    assert report["kept"] == 1 and report["dropped"] == 1
    assert report["dropped_examples"][0]["review"].startswith("The package")


@pytest.mark.slow
def test_real_booklyn_reviews_spread_around_the_threshold(booklyn_slice) -> None:
    sim = booklyn_slice.similarity
    assert sim is not None and len(sim) > 40
    keep = keep_mask(sim, booklyn_slice.reviews.book, DEFAULT_THRESHOLD)
    assert 0.2 < keep.mean() < 0.95  # it filters, but not everything


def test_top_k_and_pooling() -> None:
    book = np.array([0, 0, 0, 2])
    sim = np.array([0.1, 0.9, 0.5, 0.3])
    assert keep_mask(sim, book, top_k=2).tolist() == [False, True, True, True]
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 2.0]], dtype=np.float32)
    reviews = Reviews(book, ["a", "b", "c", "d"], emb)
    pooled, counts = pool_reviews(reviews, np.array([True, True, False, True]), 3)
    assert counts.tolist() == [2, 0, 1]
    assert pooled.tolist() == [[0.5, 0.5], [0.0, 0.0], [2.0, 2.0]]
    assert flatten_reviews([["x", " "], [], ["y"]])[0].tolist() == [0, 2]
    with pytest.raises(ValueError):
        keep_mask(sim, book, threshold=0.1, top_k=1)


def test_threshold_candidates_come_from_training_books_only() -> None:
    book = np.array([0, 0, 1, 1, 2, 2])
    sim = np.array([0.1, 0.2, 0.3, 0.4, 0.95, 0.99])
    train_only = threshold_candidates(sim, book, np.array([0, 1]), quantiles=(0.0, 1.0))
    assert train_only == [0.1, 0.4]  # book 2 (not training) never sets a candidate
    best, scores = choose_threshold([0.1, 0.4], lambda t: 1.0 - abs(t - 0.4))
    assert best == 0.4 and set(scores) == {0.1, 0.4}
