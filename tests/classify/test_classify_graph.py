import numpy as np
import pytest

from recfuse.classify.graph import build_label_graph, node_labels
from recfuse.classify.pipeline import fit_method, review_features
from recfuse.classify.splits import split_parts


def test_ml_gcn_graph_by_hand() -> None:
    # labels a, b, c: a&b together twice, a alone once, c alone twice
    y = np.array([[1, 1, 0], [1, 1, 0], [1, 0, 0], [0, 0, 1], [0, 0, 1]])
    g = build_label_graph(y, tau=0.5, p=0.2)
    assert g.conditional[0, 1] == pytest.approx(2 / 3)  # P(b | a)
    assert g.conditional[1, 0] == pytest.approx(1.0)  # P(a | b)
    assert g.conditional[2, 0] == 0.0
    # binarized at 0.5, re-weighted: self 0.8, the one neighbour 0.2; c has none: self 1
    assert g.adjacency[0] == pytest.approx([0.8, 0.2, 0.0])
    assert g.adjacency[2] == pytest.approx([0.0, 0.0, 1.0])
    degree = g.adjacency.sum(1)
    assert g.normalized[0, 1] == pytest.approx(0.2 / np.sqrt(degree[0] * degree[1]))


def test_level1_nodes_link_genres_to_their_parent() -> None:
    level1 = np.array([1, 1, 0])
    level2 = np.array([[1, 0], [1, 0], [0, 1]])
    y = node_labels(level1, level2)
    assert y.shape == (3, 4)
    g = build_label_graph(y)
    assert g.adjacency[2, 1] > 0  # genre 0 -> Fiction
    assert g.adjacency[3, 0] > 0  # genre 1 -> Nonfiction


def test_label_graph_sees_training_labels_only(make_corpus) -> None:
    corpus = make_corpus(n=240, n_genres=6)
    parts = split_parts("random", corpus.authors, 0)
    y2 = corpus.labels.level2
    # Genres 4 and 5 co-occur in every test book and nowhere else.
    y2[:, 4:] = 0
    y2[parts == 2, 4] = 1
    y2[parts == 2, 5] = 1
    model = fit_method("higemine", corpus, review_features(corpus, "none"), parts, seed=0)
    graph = model.label_graph
    assert graph is not None
    assert graph.counts[2 + 4] == 0 and graph.counts[2 + 5] == 0
    assert graph.conditional[2 + 4, 2 + 5] == 0.0 and graph.adjacency[2 + 4, 2 + 5] == 0.0
    train = parts == 0
    expected = build_label_graph(node_labels(corpus.labels.level1[train], y2[train]))
    assert np.array_equal(graph.adjacency, expected.adjacency)
    # and the same pair does show up when the test rows are (wrongly) included
    leaky = build_label_graph(node_labels(corpus.labels.level1, y2))
    assert leaky.adjacency[2 + 4, 2 + 5] > 0
