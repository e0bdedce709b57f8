"""Malformed outputs and refusals are counted failures with reasons; the job never crashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from recfuse.llm import GenerationParams, LLMCache, LLMJob, ParseSpec, PromptRecord, PromptTemplate
from recfuse.llm.parsing import ChoiceParser, JsonParser, ParseFailure, model_from_fields

TEMPLATE = PromptTemplate(user="Keywords for this item as JSON.\n{title}")
SPEC = ParseSpec(
    kind="json", fields={"keywords": "list[str]", "genre": "fiction|nonfiction"}, retries=1
)


def test_parsers_accept_good_and_reject_bad_output() -> None:
    parser = SPEC.build()
    assert isinstance(parser, JsonParser)
    good = 'Sure! ```json\n{"keywords": ["war", "peace"], "genre": "fiction"}\n```'
    assert parser.parse(good) == {"keywords": ["war", "peace"], "genre": "fiction"}
    cases = {
        "": "empty output",
        "I'm sorry, but I can't help with that.": "refusal",
        "keywords: war, peace": "no JSON object",
        '{"keywords": "war", "genre": "fiction"}': "schema: keywords",
        '{"keywords": ["a"], "genre": "poetry"}': "schema: genre",
        "<<<DATA title\nDune\nDATA>>>": "echo",
        '{"keywords": ["a"], "genre": "fiction"': "no JSON object",
        "__import__('os').system('echo hi')": "no JSON object",
    }
    for text, reason in cases.items():
        with pytest.raises(ParseFailure) as info:
            parser.parse(text)
        assert info.value.reason.startswith(reason), (text, info.value.reason)
    choice = ChoiceParser(["yes", "no"])
    assert choice.parse(" **Yes**, it is.") == "yes"
    with pytest.raises(ParseFailure):
        choice.parse("Yesterday I read it")
    with pytest.raises(Exception, match="unknown type"):
        model_from_fields({"x": "dict"})


def test_malformed_outputs_are_counted_failures_without_crashing(tmp_path: Path, fake_llm) -> None:
    good = '{"keywords": ["spice"], "genre": "fiction"}'
    fake = fake_llm(
        {
            "Dune": [good],
            "Emma": ["not json", '{"keywords": ["match"], "genre": "fiction"}'],  # fixed on retry
            "Walden": ["I'm sorry, I cannot do that.", "I'm sorry, I cannot do that."],
            "Hamlet": ['{"keywords": 5}', "{broken"],
        }
    )
    records = [PromptRecord(t, {"title": t}) for t in ["Dune", "Emma", "Walden", "Hamlet"]]
    cache = LLMCache(tmp_path / "c.sqlite")
    job = LLMJob(
        "kw",
        records,
        TEMPLATE,
        fake,
        params=GenerationParams(max_tokens=32),
        parse=SPEC,
        cache=cache,
        progress=False,
    )
    report = job.run()
    assert (report.completed, report.failed) == (2, 2)
    assert len(fake.prompts_seen) == 4 + 3  # one retry each for Emma, Walden, Hamlet
    rows = {r["id"]: r for r in cache.job_outputs("kw")}
    assert rows["Dune"]["parsed"] == {"keywords": ["spice"], "genre": "fiction"}
    assert rows["Emma"]["status"] == "ok" and rows["Emma"]["attempts"] == 2
    assert rows["Walden"]["reason"].startswith("refusal")
    assert rows["Hamlet"]["reason"].startswith("no JSON object")
    assert rows["Hamlet"]["raw_text"] == "{broken"  # the raw text of a failure is kept
    status = cache.status("kw")
    assert status.failure_reasons == {"refusal": 1, "no JSON object in output": 1}
    # Failures count as answered: a rerun asks nothing, unless told to retry them.
    assert job.run().completed + job.run().failed == 0
    assert len(fake.prompts_seen) == 7
    retry = LLMJob(
        "kw",
        records,
        TEMPLATE,
        fake,
        params=GenerationParams(max_tokens=32),
        parse=SPEC,
        cache=cache,
        progress=False,
        retry_failed=True,
    )
    assert retry.run().already_done == 2


def test_a_json_job_sends_its_schema_to_the_backend(tmp_path: Path, fake_llm) -> None:
    job = LLMJob(
        "s",
        [PromptRecord("a", {"title": "x"})],
        TEMPLATE,
        fake_llm(),
        parse=SPEC,
        cache=tmp_path / "c.sqlite",
        progress=False,
    )
    schema = job.task.params.json_schema
    assert schema is not None and set(schema["required"]) == {"keywords", "genre"}


def test_score_many_falls_back_to_score_and_checks_shapes() -> None:
    """`score_many` on an object without the method scores one by one; bad shapes are refused."""
    import numpy as np

    from recfuse.llm import BackendError, score_many

    class FakeScorer:
        backend, model_id = "fake", "fake"

        def __init__(self, width: int | None = None):
            self.width, self.calls = width, 0

        def score(self, prompt: object, options: list[str]) -> np.ndarray:
            self.calls += 1
            return -np.arange(self.width or len(options), dtype=float)

    fake = FakeScorer()
    out = score_many(fake, [("p", ["a", "b"]), ("q", ["a", "b", "c"])])
    assert fake.calls == 2 and [o.tolist() for o in out] == [[0, -1], [0, -1, -2]]
    with pytest.raises(BackendError, match="misshapen"):
        score_many(FakeScorer(width=1), [("p", ["a", "b"])])
