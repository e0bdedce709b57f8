"""Generator, discriminator, controls and the governance gate on real ml-100k data (MiniLM)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recfuse.augment.discriminator import (
    discriminate,
    labelled_check,
    lowest,
    mf_edge_scores,
    random_drop,
)
from recfuse.augment.gate import RefinementGate
from recfuse.augment.generator import (
    GeneratorSettings,
    generate,
    random_synthetic,
    real_edges,
    tail_mask,
)
from recfuse.augment.teachers import LLMTeacher, SimilarityTeacher
from recfuse.split import Split


@pytest.fixture(scope="module")
def split() -> Split:
    from recfuse.data import load_dataset
    from recfuse.split import make_split

    return make_split(load_dataset("ml-100k"), "leave_one_out", seed=0)


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    from recfuse.features.extract import dataset_features

    fset = dataset_features("ml-100k", "minilm", progress=False)
    v = fset.load(fset.n_layers - 1, "mean").astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_gate_enforces_cap_tail_and_heldout(split: Split, tmp_path: Path) -> None:
    tail = tail_mask(split)
    gate = RefinementGate(split, tmp_path / "ledger.db", tail)
    item = int(np.flatnonzero(tail)[0])
    owner = int(split.valid["user"].iloc[0])
    held_item = int(split.valid["item"].iloc[0])
    assert len(gate.write_synthetic(item, np.arange(5), "t")) == 5
    assert len(gate.write_synthetic(item, np.arange(5, 21), "t")) == 0  # 5 + 16 > 20
    assert len(gate.write_synthetic(item, np.arange(5, 21), "other")) == 16  # its own data set
    head = int(np.flatnonzero(~tail)[0])
    assert len(gate.write_synthetic(head, np.arange(2), "t")) == 0  # not a tail item
    gate.tail[held_item] = True
    assert len(gate.write_synthetic(held_item, np.array([owner]), "t")) == 0  # a valid pair
    edges = real_edges(split)
    half = np.zeros(len(edges), dtype=bool)
    half[: len(edges) // 2 + 1] = True
    assert len(gate.drop_edges(edges, half, "t")) == len(edges)  # more than half: denied
    assert gate.denied == 4
    entries = list(gate.ledger.entries())
    decisions = [e["decision"] for e in entries[1:]]
    assert decisions == ["allow", "deny", "allow", "deny", "deny", "deny"]
    gate.close()
    from recfuse.governance import verify_ledger

    assert verify_ledger(tmp_path / "ledger.db").ok  # the refinement log recomputes


def test_generator_writes_only_allowed_tail_edges(
    split: Split, vectors: np.ndarray, tmp_path: Path
) -> None:
    profiles = SimilarityTeacher(vectors, split)
    gate = RefinementGate(split, tmp_path / "ledger.db", tail_mask(split))
    settings = GeneratorSettings(per_item=2, candidates=6, pool=30, weight=0.3, max_items=50)
    rng = np.random.default_rng(0)
    synthetic = generate(split, profiles, profiles, gate, settings, rng)
    assert len(synthetic) == 100 and synthetic["synthetic"].all()
    assert (synthetic["weight"] == 0.3).all()
    assert synthetic.groupby("item").size().max() == 2 and gate.tail[synthetic["item"]].all()
    every = pd.concat([split.train, split.valid, split.test])
    clash = synthetic.merge(every, on=["user", "item"])
    assert clash.empty  # never an existing, validation or test pair
    first = split.train.groupby("user")["time"].min()
    assert (synthetic["time"].to_numpy() < first[synthetic["user"]].to_numpy()).all()
    # the teacher's choice beats a random pick of the same items on the teacher's own score
    control = random_synthetic(split, synthetic, gate, 0.3, rng)
    assert control.groupby("item").size().equals(synthetic.groupby("item").size())
    chosen = profiles.score(synthetic["user"].to_numpy(), synthetic["item"].to_numpy())
    rand = profiles.score(control["user"].to_numpy(), control["item"].to_numpy())
    assert chosen.mean() > rand.mean()
    assert gate.ledger.size() == 1 + 2 * 50  # policy load + one entry per item and source
    gate.close()


def test_discriminator_check_and_controls(
    split: Split, vectors: np.ndarray, tmp_path: Path
) -> None:
    teacher = SimilarityTeacher(vectors, split)
    rng = np.random.default_rng(0)
    check = labelled_check(teacher, split, threshold=0.0, rng=rng, n=500)
    assert check["auc"] > 0.55  # MiniLM taste profiles tell real held-out edges from random ones
    assert np.array_equal(lowest(np.array([3.0, 1.0, 2.0, 0.5]), 0.5), [False, True, False, True])
    edges = real_edges(split)
    gate = RefinementGate(split, tmp_path / "ledger.db", tail_mask(split))
    assert len(random_drop(edges, 100, gate, rng)) == len(edges) - 100
    scores = mf_edge_scores(split, edges, dim=16)
    assert scores.shape == (len(edges),) and np.isfinite(scores).all()
    weak = discriminate(edges, scores, 0.1, gate, "weight", factor=0.25)
    assert len(weak) == len(edges)  # down-weighting keeps every edge ...
    low = lowest(scores, 0.1)
    assert np.allclose(weak["weight"].to_numpy()[low], 0.25) and (weak["weight"][~low] == 1).all()
    assert edges["weight"].eq(1).all()  # ... and leaves the input frame alone
    half = np.zeros(len(edges), dtype=bool)
    half[: len(edges) // 2 + 1] = True
    assert gate.drop_edges(edges, half, "t", factor=0.5) is edges  # over the cap: denied
    actions = [e["action"] for e in gate.ledger.entries()][1:]
    assert actions == ["drop_edges", "downweight_edges", "downweight_edges"]
    gate.close()


class FakeYesNoLLM:
    """Control-flow double: P(yes) high when the candidate's title contains 'Star'."""

    backend, model_id, batch_size = "fake", "fake-yes-no", 4

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def score(self, prompt: object, options: Sequence[str]) -> np.ndarray:
        text = prompt[-1]["content"] if isinstance(prompt, list) else str(prompt)
        self.prompts.append(text)
        candidate = text.split("Candidate item:")[1]
        return np.log(np.array([0.9, 0.1]) if "Star" in candidate else np.array([0.2, 0.8]))

    def generate(self, *args: object, **kwargs: object) -> list[object]:
        raise AssertionError("not scripted")


def test_llm_teacher_fences_text_and_reads_p_yes(split: Split, tmp_path: Path) -> None:
    from recfuse.data import load_dataset

    titles = load_dataset("ml-100k").items["title"].astype(str).tolist()
    star = next(i for i, t in enumerate(titles) if "Star" in t)
    other = next(i for i, t in enumerate(titles) if "Star" not in t)
    llm = FakeYesNoLLM()
    teacher = LLMTeacher(llm, titles, split, "test-i2i", cache=tmp_path / "cache.db")
    scores = teacher.score(np.array([0, 1]), np.array([star, other]))
    assert scores[0] == pytest.approx(0.9 / 1.0) and scores[1] == pytest.approx(0.2)
    for prompt in llm.prompts:  # both the history and the candidate are fenced data
        assert prompt.count("<<<DATA") == 2 and prompt.count("DATA>>>") == 2
        assert prompt.split("Candidate item:")[1].lstrip().startswith("<<<DATA")
    again = teacher.score(np.array([0, 1]), np.array([star, other]))  # from the SQLite cache
    assert np.array_equal(scores, again) and len(llm.prompts) == 2


def test_minilm_judge_keeps_the_llm_off_the_edges(
    split: Split, vectors: np.ndarray, tmp_path: Path
) -> None:
    """judge=minilm: the LLM (a fake here) writes synthetic edges and takes its own labelled
    check, but never scores the training edges (the bounded LLM study)."""
    from recfuse.studies.i2i.data import DropSettings, refine

    titles = ["Star " + str(i) if i % 2 else "Plain " + str(i) for i in range(split.n_items)]
    llm = FakeYesNoLLM()

    def factory(s: Split, profiles: SimilarityTeacher) -> LLMTeacher:
        return LLMTeacher(llm, titles, s, "test-judge", name="fake", cache=tmp_path / "c.db")

    settings = GeneratorSettings(per_item=2, candidates=4, pool=20, weight=0.5, max_items=10)
    drops = DropSettings([0.1], check_pairs=30, judge="minilm")
    refined = refine(split, vectors, factory, settings, drops, 0, tmp_path / "ledger.db")
    assert len(llm.prompts) == 10 * 4 + 2 * 30  # generator prompts + the teacher's check only
    assert refined.cost["discriminator"] == "minilm" and refined.cost["teacher"] == "fake"
    assert set(refined.teacher_check) >= {"auc", "precision", "recall"}
    assert len(refined.get("disc", 0.1)) < len(refined.get("original"))
