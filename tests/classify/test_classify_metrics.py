import numpy as np
import pytest

from recfuse.classify.metrics import (
    example_f1,
    hierarchical_f1,
    level1_scores,
    level2_scores,
    per_genre_f1,
)
from recfuse.evaluation.significance import paired_arrays, sign_flip_test


def test_level1_by_hand() -> None:
    s = level1_scores(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]))
    assert s["l1_acc"] == pytest.approx(0.75)
    # fiction F1 = 2/3, non-fiction F1 = 2*2/(4+1) = 0.8
    assert s["l1_f1"] == pytest.approx((2 / 3 + 0.8) / 2)


def test_level2_by_hand() -> None:
    true = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0]])
    pred = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]])
    # tp=2, fp=2, fn=1 -> micro 4/7; genre F1 = [2/3, 2/3, 0]; macro over present genres 0,1
    s = level2_scores(true, pred)
    assert s["l2_micro_f1"] == pytest.approx(4 / 7)
    assert s["l2_macro_f1"] == pytest.approx(2 / 3)
    assert per_genre_f1(true, pred) == pytest.approx([2 / 3, 2 / 3, 0.0])


def test_hierarchical_f1_counts_the_ancestor() -> None:
    true_l1, true_l2 = np.array([1]), np.array([[1, 0]])
    # wrong genre, right Level 1: sets {F, g0} vs {F, g1} -> P = R = 1/2
    assert hierarchical_f1(true_l1, true_l2, np.array([1]), np.array([[0, 1]])) == pytest.approx(
        0.5
    )
    # wrong Level 1 too: nothing in common
    assert hierarchical_f1(true_l1, true_l2, np.array([0]), np.array([[0, 1]])) == 0.0
    assert example_f1(true_l1, true_l2, np.array([1]), np.array([[1, 0]])) == pytest.approx([1.0])


def test_significance_detects_a_real_difference_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    assert sign_flip_test(rng.normal(0.3, 1.0, 400)) < 0.01
    assert sign_flip_test(rng.normal(0.0, 1.0, 400)) > 0.01
    assert paired_arrays(np.array([0.5, 0.6, 0.7]), np.array([0.4, 0.45, 0.6])).diff == (
        pytest.approx(0.35 / 3)
    )
