"""I2I models against a hand-computed example, weighted edges, the trigger protocol, real data."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from recfuse.models.i2i import EmbeddingI2I, ItemCF, Swing
from recfuse.split import Split

# u0: items 0, 1, 2; u1: items 0, 1; u2: items 1, 2 (4 items; item 3 never seen)
EDGES = pd.DataFrame({"user": [0, 0, 0, 1, 1, 2, 2], "item": [0, 1, 2, 0, 1, 1, 2],
                      "time": [0, 1, 2, 0, 1, 0, 1]})  # fmt: skip


def toy_split(edges: pd.DataFrame = EDGES) -> Split:
    empty = edges.iloc[:0]
    return Split("toy", 0, 3, 4, edges, empty, empty)


def test_itemcf_cosine_matches_hand_computation() -> None:
    s = ItemCF(mode="cosine").fit(toy_split()).similarity_.toarray()
    # co(0,1) = 2 (u0, u1), n0 = 2, n1 = 3; co(0,2) = 1, n2 = 2; co(1,2) = 2
    assert s[0, 1] == pytest.approx(2 / np.sqrt(6), rel=1e-6)
    assert s[0, 2] == pytest.approx(1 / 2, rel=1e-6)
    assert s[1, 2] == pytest.approx(2 / np.sqrt(6), rel=1e-6)
    assert np.allclose(s, s.T) and np.all(np.diag(s) == 0) and np.all(s[3] == 0)


def test_itemcf_conditional_probability() -> None:
    s = ItemCF(mode="conditional", alpha=0.0).fit(toy_split()).similarity_.toarray()
    assert s[0, 1] == pytest.approx(2 / 2)  # P(1 | 0): both users of item 0 chose item 1
    assert s[1, 0] == pytest.approx(2 / 3)  # P(0 | 1)


def test_swing_matches_hand_computation() -> None:
    # alpha = 1, w_u = |I_u|^-1/2: w0 = 1/sqrt3, w1 = w2 = 1/sqrt2
    s = Swing(alpha=1.0, user_alpha=0.0).fit(toy_split()).similarity_.toarray()
    # s(0,1): the pair (u0, u1), who share 2 items: w0 w1 / (1 + 2)
    assert s[0, 1] == pytest.approx(1 / (3 * np.sqrt(6)), rel=1e-6)
    assert s[1, 2] == pytest.approx(1 / (3 * np.sqrt(6)), rel=1e-6)  # the pair (u0, u2)
    assert s[0, 2] == 0.0  # only u0 chose both: no pair, no swing
    assert np.allclose(s, s.T)


def test_weighted_edges_count_less() -> None:
    edges = EDGES.assign(weight=[1, 1, 1, 0.5, 1, 1, 1])  # (u1, item 0) is a half-weight edge
    cf = ItemCF().fit(toy_split(), edges=edges).similarity_.toarray()
    assert cf[0, 1] == pytest.approx(1.5 / np.sqrt(1.25 * 3), rel=1e-6)
    sw = Swing(alpha=1.0, user_alpha=0.0).fit(toy_split(), edges=edges).similarity_.toarray()
    assert sw[0, 1] == pytest.approx(0.5 / (3 * np.sqrt(6)), rel=1e-6)
    dropped = ItemCF().fit(toy_split(), edges=EDGES.drop(index=[3])).similarity_.toarray()
    assert dropped[0, 1] == pytest.approx(1 / np.sqrt(3), rel=1e-6)


def test_trigger_protocol_scores_only_the_last_item() -> None:
    model = ItemCF().fit(toy_split())
    scores = model.score(np.array([0, 1]), [np.array([0, 2]), np.array([2, 0])])
    sim = model.similarity_.toarray()
    assert np.allclose(scores[0], sim[2]) and np.allclose(scores[1], sim[0])
    two = ItemCF(n_recent=2, decay=0.5).fit(toy_split())
    both = two.score(np.array([0]), [np.array([0, 2])])
    assert np.allclose(both[0], sim[2] + 0.5 * sim[0])


def test_swing_user_cap_is_seeded() -> None:
    a = Swing(max_users=2, seed=1).fit(toy_split()).similarity_.toarray()
    b = Swing(max_users=2, seed=1).fit(toy_split()).similarity_.toarray()
    assert np.array_equal(a, b)


def test_i2i_models_beat_random_on_ml100k() -> None:
    from recfuse.data import load_dataset
    from recfuse.evaluation import Evaluator
    from recfuse.split import make_split

    split = make_split(load_dataset("ml-100k"), "leave_one_out", seed=0)
    evaluator = Evaluator(split, ks=(10,))
    chance = 10 / split.n_items
    for model in (ItemCF(), Swing(max_users=50), EmbeddingI2I(dim=32)):
        recall = evaluator.evaluate(model.fit(split), "valid").metrics["Recall@10"]
        assert recall > 3 * chance, (model.name, recall)


def test_sasrec_i2i_windows_carry_each_targets_edge_weight() -> None:
    from recfuse.models.i2i_sasrec import WeightedSASRec, edge_sequences

    # u0's synthetic item 3 (weight 0.5, time -1) comes first; u2 has one edge: no target
    edges = pd.DataFrame({"user": [0, 0, 0, 1, 1, 2], "item": [0, 1, 3, 2, 0, 1],
                          "time": [0, 1, -1, 0, 1, 0], "weight": [1, 1, 0.5, 1, 0.25, 1]})  # fmt: skip
    sequences = edge_sequences(edges, n_users=3)
    assert sequences[0][0].tolist() == [3, 0, 1] and sequences[0][1].tolist() == [0.5, 1, 1]
    net = WeightedSASRec(sequences, dim=8, max_len=4, windows="sliding")
    inputs, targets, weights = (t.numpy() for t in net.training_tensors(SimpleNamespace(n_items=4)))  # type: ignore[arg-type]
    pad = targets == 4
    assert inputs.tolist() == [[4, 4, 3, 0], [4, 4, 4, 2]]
    assert targets.tolist() == [[4, 4, 0, 1], [4, 4, 4, 0]]
    assert weights[~pad].tolist() == [1.0, 1.0, 0.25] and np.all(weights[pad] == 0)


def test_sasrec_i2i_learns_item_vectors_on_ml100k() -> None:
    from recfuse.data import load_dataset
    from recfuse.evaluation import Evaluator
    from recfuse.models.i2i_sasrec import SASRecI2I
    from recfuse.split import make_split

    split = make_split(load_dataset("ml-100k"), "leave_one_out", seed=0)
    evaluator = Evaluator(split, ks=(10,))
    scores: list[float] = []

    def validate(model: SASRecI2I) -> float:
        scores.append(evaluator.evaluate(model, "valid").metrics["Recall@10"])
        return scores[-1]

    model = SASRecI2I(dim=32, epochs=4, patience=2, lr=0.005).fit(split, validate=validate)
    assert model.similarity_.shape == (split.n_items, 32)
    assert np.allclose(np.linalg.norm(model.similarity_, axis=1), 1.0, atol=1e-4)
    assert len(scores) == model.epochs_ >= 3  # one validation per epoch chose the table
    assert max(scores) > 3 * 10 / split.n_items, scores
