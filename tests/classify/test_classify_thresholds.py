import numpy as np
import pytest

from recfuse.classify.metrics import level2_scores
from recfuse.classify.pipeline import METHODS, fit_method, review_features
from recfuse.classify.splits import split_parts
from recfuse.classify.thresholds import decide_genres, tune_binary_threshold, tune_genre_thresholds


def test_genre_thresholds_by_hand() -> None:
    probs = np.array([[0.9, 0.2], [0.3, 0.1], [0.25, 0.4]])
    labels = np.array([[1, 0], [1, 0], [0, 0]])
    t = tune_genre_thresholds(probs, labels)
    assert t[0] == pytest.approx(0.3)  # catches both positives (0.9, 0.3), not 0.25
    assert t[1] == 0.5  # no positive in validation: untouched
    assert decide_genres(
        np.array([[0.1, 0.2]]), np.array([0.5, 0.5]), single_label=True
    ).tolist() == [[0, 1]]
    assert decide_genres(
        np.array([[0.6, 0.2]]), np.array([0.5, 0.1]), single_label=False
    ).tolist() == [[1, 1]]
    assert tune_binary_threshold(np.array([0.2, 0.4, 0.6]), np.array([0, 1, 1])) <= 0.4


@pytest.mark.parametrize("method", METHODS)
def test_thresholds_never_see_test_data(method: str, make_corpus) -> None:
    corpus = make_corpus(n=150, n_genres=5)
    parts = split_parts("random", corpus.authors, 1)
    feats = review_features(corpus, "none")
    model = fit_method(method, corpus, feats, parts, seed=0)

    # Scramble every test label and test feature: nothing the fit produced may change.
    test = parts == 2
    rng = np.random.default_rng(7)
    corpus.labels.level2[test] = rng.integers(0, 2, corpus.labels.level2[test].shape)
    corpus.labels.level1[test] = 1 - corpus.labels.level1[test]
    corpus.blurb_emb[test] = rng.normal(size=corpus.blurb_emb[test].shape)
    corpus.blurbs[:] = [
        b if not t else "scrambled text" for b, t in zip(corpus.blurbs, test, strict=True)
    ]
    again = fit_method(method, corpus, review_features(corpus, "none"), parts, seed=0)
    assert again.thresholds_l1 == model.thresholds_l1
    assert np.array_equal(again.thresholds_l2, model.thresholds_l2)


def test_models_learn_the_synthetic_signal(make_corpus) -> None:
    corpus = make_corpus(n=300, n_genres=5)
    parts = split_parts("random", corpus.authors, 0)
    feats = review_features(corpus, "none")
    test = np.flatnonzero(parts == 2)
    for method in ("higemine", "flat_logreg"):
        pred = fit_method(method, corpus, feats, parts, seed=0).predict(feats.take(test))
        assert (pred.l1 == corpus.labels.level1[test]).mean() > 0.9
        assert level2_scores(corpus.labels.level2[test], pred.l2)["l2_micro_f1"] > 0.8
