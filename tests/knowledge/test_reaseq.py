"""ReaSeq control flow: schemas, the critic, the leakage guard, reruns, cost accounting.

`FakeAgentLLM` is a scripted double for control flow only; no number in the docs comes from it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from recfuse.data import load_dataset
from recfuse.errors import LeakageError
from recfuse.knowledge.agents import CostLog, run_step
from recfuse.knowledge.reaseq import (
    KnowledgeRecord,
    KnowledgeRun,
    critic,
    knowledge_chunk,
    knowledge_texts,
    quality,
    read_extractor,
    validate_record,
)
from recfuse.knowledge.reaseq_interests import SampledLatent, interest_records, pool_samples
from recfuse.llm.base import Generation
from recfuse.llm.cache import LLMCache
from recfuse.llm.sources import PromptRecord
from recfuse.split import make_split

PLANTED = "waterproof stainless steel blender"


class FakeAgentLLM:
    """Answers each agent's prompt from a script and records every prompt it was sent."""

    backend = "fake"
    model_id = "fake-agents"

    def __init__(self, extractor: str | None = None) -> None:
        self.prompts: list[str] = []
        self.extractor = extractor or json.dumps(
            {"category": "Comedy", "attributes": ["comedy", PLANTED], "use": "an evening film",
             "audience": "families", "complements": ["popcorn"], "substitutes": ["N/A"]}
        )  # fmt: skip

    def generate(self, prompts: Sequence[Any], *args: Any, **kwargs: Any) -> list[Generation]:
        out = []
        for prompt in prompts:
            text = prompt[-1]["content"] if isinstance(prompt, list) else str(prompt)
            self.prompts.append(text)
            if "Think step by step" in text:
                answer = "A light comedy film for families."
            elif "Write a JSON object" in text:
                answer = self.extractor
            else:
                answer = "quiet romantic dramas"
            out.append(Generation(answer, prompt_tokens=20, completion_tokens=7, seconds=0.001))
        return out

    def score(self, prompt: Any, options: Sequence[str]) -> np.ndarray:
        raise AssertionError("not scripted")

    def hidden_states(
        self, texts: Sequence[str], layers: Sequence[int], pooling: str = "mean"
    ) -> Any:
        raise AssertionError("not scripted")


TEXTS = [
    "Kolya. 1996. Comedy",
    "Heat. 1995. Action Crime Thriller",
    "Babe. 1995. Children's Comedy",
]


def test_schema_refuses_malformed_agent_output() -> None:
    assert validate_record({"category": "Comedy", "attributes": ["funny"]})[0] is not None
    for bad in (
        {"attributes": ["funny"]},  # no category
        {"category": "Comedy", "attributes": 3},  # wrong type
        {"category": "Comedy", "title": "Kolya"},  # a key the schema does not have
        {"category": "Comedy", "attributes": ["x" * 200]},  # value far too long
        ["Comedy"],  # not an object
    ):
        record, error = validate_record(bad)
        assert record is None and error and error.startswith("schema:")
    assert read_extractor("I cannot help with that.") == (None, "no JSON object in output")
    obj, how = read_extractor('{"category": "Comedy", "attributes": [{"name": "dry wit"}, "Cz')
    assert how == "repaired" and obj == {"category": "Comedy", "attributes": ["dry wit"]}
    assert read_extractor('{"category": "Comedy", "use": "laughs"} trailing')[1] == "strict"


def test_critic_removes_a_planted_unsupported_claim() -> None:
    record = KnowledgeRecord(category="Comedy film", attributes=["comedy", PLANTED],
                             substitutes=["N/A"], audience="families")  # fmt: skip
    verdict = critic(record, TEXTS[0])
    assert verdict.record is not None
    assert PLANTED not in verdict.record.attributes and "comedy" in verdict.record.attributes
    assert verdict.record.substitutes == [] and verdict.record.audience == "families"
    reasons = {v: r for _, v, r in verdict.removed}
    assert reasons[PLANTED] == "not supported by the item text" and reasons["N/A"] == "placeholder"
    # with a topicality check, an off-topic inferred value goes as well
    off = critic(record, TEXTS[0], similarity=lambda v, t: np.full(len(v), 0.01))
    assert off.record is not None and off.record.audience == ""
    # nothing supported left: the record is rejected
    assert critic(KnowledgeRecord(category=PLANTED), TEXTS[0]).record is None


def test_pipeline_reruns_without_llm_calls_and_counts_cost(tmp_path: Path) -> None:
    cache = LLMCache(tmp_path / "llm.sqlite")
    llm, costs = FakeAgentLLM(), CostLog(tmp_path / "runs.jsonl")
    found = knowledge_chunk("toy", TEXTS, [0, 1, 2], llm, cache=cache, costs=costs)
    assert len(llm.prompts) == 6 and costs.new_calls() == 6  # analyst + extractor per item
    assert sum(r["completion_tokens"] for r in costs.runs) == 6 * 7
    assert len((tmp_path / "runs.jsonl").read_text().splitlines()) == 2
    assert all(PLANTED not in (k.record.attributes if k.record else []) for k in found.values())
    assert all("<<<DATA" in p for p in llm.prompts)  # item text and notes are fenced
    rerun_costs = CostLog()
    again = knowledge_chunk("toy", TEXTS, [0, 1, 2], llm, cache=cache, costs=rerun_costs)
    assert len(llm.prompts) == 6 and rerun_costs.new_calls() == 0
    assert {i: k.record for i, k in again.items()} == {i: k.record for i, k in found.items()}
    q = quality(KnowledgeRun("toy", 3, again, rerun_costs))
    assert q["schema_valid"] == 1.0 and q["coverage"] == 1.0 and 0 < q["critic_removed"] < 1
    texts = knowledge_texts(KnowledgeRun("toy", 4, again, rerun_costs), [*TEXTS, "Alien"])
    assert texts[3] == "Alien" and texts[0].startswith("Kolya. 1996. Comedy:")


def test_broken_extractor_output_is_retried_once_and_counted(tmp_path: Path) -> None:
    llm = FakeAgentLLM(extractor="Sure! Here is the record you asked for.")
    found = knowledge_chunk("toy", TEXTS[:2], [0, 1], llm, cache=LLMCache(tmp_path / "c.sqlite"))
    assert len(llm.prompts) == 2 + 2 + 2  # analyst, extractor, one retry each
    assert all(k.record is None and k.attempts == 2 for k in found.values())
    assert all(k.failure == "extractor: no JSON object in output" for k in found.values())
    q = quality(KnowledgeRun("toy", 2, found, CostLog()))
    assert q["schema_valid"] == 0.0 and q["failures"] == {"extractor": 2} and q["retried"] == 1.0


def test_no_valid_or_test_item_reaches_a_user_prompt(tmp_path: Path) -> None:
    data = load_dataset("ml-100k")
    split = make_split(data, "leave_one_out")
    titles = [f"title{i}" for i in range(data.n_items)]  # unique, so a title names one item
    llm = FakeAgentLLM()
    latent = SampledLatent(llm, lambda t: np.ones((len(t), 4)), k=2, max_users=30,
                           cache=LLMCache(tmp_path / "c.sqlite"))  # fmt: skip
    found = latent.infer(split, titles)
    assert len(llm.prompts) == 2 * 30 and found.coverage == pytest.approx(30 / split.n_users)
    # each budget owns its job rows: a 10-user run does not replace the 30-user run's items
    smaller = dataclasses.replace(latent, max_users=10)
    smaller.infer(split, titles)
    names = set(LLMCache(tmp_path / "c.sqlite").job_names())
    assert {"reaseq-interest-u30-t24-h10-0", "reaseq-interest-u10-t24-h10-1"} <= names
    assert len(llm.prompts) == 2 * 30  # the 10 users' answers were read from the cache
    held = {
        (int(u), int(i))
        for f in (split.valid, split.test)
        for u, i in zip(f["user"], f["item"], strict=True)
    }
    for record in interest_records(split, titles, 10, range(30)):
        user = int(record.id)
        shown = {int(t.removeprefix("- title")) for t in record.fields["history"].splitlines()}
        assert not any((user, i) in held for i in shown)
    leaked = int(split.test["item"].iloc[0]), int(split.test["user"].iloc[0])
    bad = PromptRecord("x", {"history": "?"}, ((leaked[1], leaked[0]),))
    with pytest.raises(LeakageError):
        run_step(latent.step(0), "leak", [bad], llm, LLMCache(tmp_path / "c.sqlite"), split=split)


def test_pooled_interests_are_unit_rows_or_zero() -> None:
    vectors = pool_samples([["a", "b"], [], ["c"]], lambda t: np.eye(3)[: len(t)] + 1.0)
    assert vectors.shape == (3, 3)
    assert np.allclose(np.linalg.norm(vectors, axis=1), [1.0, 0.0, 1.0])


def test_interest_sasrec_and_the_merged_channel() -> None:
    from recfuse.knowledge.reaseq_model import InterestSASRec, VectorChannel, merged_hits

    split = make_split(load_dataset("ml-100k"), "leave_one_out")
    rng = np.random.default_rng(0)
    interests = rng.normal(size=(split.n_users, 6)).astype(np.float32)
    model = InterestSASRec(interests, dim=8, max_len=10, epochs=1, patience=None, progress=False)
    model.fit(split)
    assert model.net_.project.weight.abs().sum() > 0  # the user-side input was trained
    users = np.arange(4)
    hist = split.histories("test")
    assert model.score(users, [hist[u] for u in users]).shape == (4, split.n_items)
    # a channel that knows each user's test item: merged recall is 1 wherever m >= 1
    test = split.test.sort_values("user")
    oracle_items = np.eye(split.n_items, dtype=np.float32)
    oracle_users = np.zeros((split.n_users, split.n_items), dtype=np.float32)
    oracle_users[test["user"].to_numpy(), test["item"].to_numpy()] = 1.0
    channel = VectorChannel(oracle_items, oracle_users)
    _, own, mixed = merged_hits(model, channel, split, k=10, m=1)
    assert mixed.mean() == 1.0 and own.mean() < 1.0


def test_governed_agents_write_the_ledger(tmp_path: Path) -> None:
    from recfuse.governance.ledger import Ledger
    from recfuse.runs.study import StudyFolder
    from recfuse.studies.reaseq import governed

    folder = StudyFolder(tmp_path / "study")
    folder.path.mkdir(parents=True)
    llm = governed(FakeAgentLLM(), folder, "reaseq-analyst")
    knowledge_chunk("toy", TEXTS, [0, 1], llm, cache=LLMCache(tmp_path / "c.sqlite"))
    with Ledger(folder.path / "ledger.db", read_only=True) as ledger:
        assert ledger.size() >= 3  # the policy load, then one entry per generate call
        actors = {json.loads(ledger.body(i))["actor"] for i in range(ledger.size())}
    assert actors == {"reaseq-analyst"}


def test_max_chunks_bounds_new_work_but_reads_answered_chunks(tmp_path: Path) -> None:
    from recfuse.knowledge.reaseq import extract_knowledge

    cache, llm = LLMCache(tmp_path / "c.sqlite"), FakeAgentLLM()
    texts = [*TEXTS, "Alien. 1979. Horror", "Fargo. 1996. Crime", "Ran. 1985. War"]
    first = extract_knowledge("toy", texts, llm, cache=cache, chunk_items=2, max_chunks=1)
    assert sorted(first.items) == [0, 1] and len(llm.prompts) == 4
    later = extract_knowledge("toy", texts, llm, cache=cache, chunk_items=2, max_chunks=0)
    assert sorted(later.items) == [0, 1] and len(llm.prompts) == 4  # read back, nothing asked
    full = extract_knowledge("toy", texts, llm, cache=cache, chunk_items=2)
    assert full.complete() and len(llm.prompts) == 12
