"""The CTranslate2 backend against the transformers reference on the real SmolLM2.

float32 must reproduce the reference's greedy text exactly and its log-probabilities to 1e-3;
int8 must keep the order of clearly different options (its differences are printed with -s).
Batched scoring (`score_many`) must equal one-by-one scoring.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from recfuse.llm import BackendSpec, PromptTemplate, RawPrompt, score_many
from recfuse.llm.base import GenerationParams, Prompt

pytestmark = pytest.mark.slow

TEMPLATE = PromptTemplate(user="In one sentence, what is this book about?\n{title}", version="t")
PAIRWISE = PromptTemplate(
    user="Which book would a reader of {history} enjoy more? Answer A or B.\nA: {a}\nB: {b}",
    version="t",
)
PROMPTS: list[Prompt] = [
    TEMPLATE.build({"title": "Dune"}),
    TEMPLATE.build({"title": "The Left Hand of Darkness"}),
    TEMPLATE.build({"title": "Emma"}),
    "What is the capital of France?",
    "Name one colour of the rainbow.",
    RawPrompt("The capital of France is"),
]
SCORE_ITEMS: list[tuple[Prompt, list[str]]] = [
    ("What is the capital of France? Answer with one word.", ["Paris", "banana", "Berlin"]),
    (RawPrompt("The capital of France is"), [" Paris", " banana", " the city of Paris"]),
    (PAIRWISE.build({"history": "Dune; Solaris", "a": "Hyperion", "b": "Emma"}), ["A", "B"]),
    (PAIRWISE.build({"history": "Emma", "a": "Persuasion", "b": "Neuromancer"}), ["A", "B"]),
    (PAIRWISE.build({"history": "Dune; Solaris", "a": "Hyperion", "b": "Emma"}), ["A", "B"]),
    (TEMPLATE.build({"title": "Walden"}), [" yes", " no", " It is a memoir"]),
    # a shared stem (the space token) and one digit each: two next-token passes, not seven
    (RawPrompt("Rate Walden from 1 to 7. Grade:"), [f" {g}" for g in range(1, 8)]),
]
# (prompt, better option, worse option) with a wide margin under the float32 model.
CLEAR = [
    ("What is the capital of France? Answer with one word.", "Paris", "banana"),
    (RawPrompt("The capital of France is"), " Paris", " banana"),
    (RawPrompt("One, two, three,"), " four", " purple"),
]


def test_float32_greedy_text_equals_transformers(smollm2: Any, ct2_float32: Any) -> None:
    reference = smollm2.generate(PROMPTS, GenerationParams(max_tokens=20))
    fast = ct2_float32.generate(PROMPTS, GenerationParams(max_tokens=20))
    assert [g.text for g in fast] == [g.text for g in reference]
    assert [g.finish_reason for g in fast] == [g.finish_reason for g in reference]
    assert [g.prompt_tokens for g in fast] == [g.prompt_tokens for g in reference]
    # Batching, bucketing and the prefix cache do not change greedy text.
    assert [
        g.text for g in ct2_float32.generate(PROMPTS[::-1], GenerationParams(max_tokens=20))
    ] == [g.text for g in reference[::-1]]


def test_generate_respects_max_tokens_and_stop(ct2_int8: Any) -> None:
    free = ct2_int8.generate([PROMPTS[3]], GenerationParams(max_tokens=12))[0]
    assert "Paris" in free.text and 0 < free.completion_tokens <= 12
    short = ct2_int8.generate([PROMPTS[1]], GenerationParams(max_tokens=3))[0]
    assert short.completion_tokens == 3 and short.finish_reason == "length"
    word = "France" if "France" in free.text else free.text.split()[1]
    cut = ct2_int8.generate([PROMPTS[3]], GenerationParams(max_tokens=12, stop=tuple([word])))[0]
    assert word not in cut.text and free.text.startswith(cut.text)
    assert cut.finish_reason == "stop"
    sampled = ct2_int8.generate(
        PROMPTS[:2], GenerationParams(max_tokens=8, temperature=0.9, seed=3)
    )
    assert all(g.text.strip() and g.completion_tokens <= 8 for g in sampled)


def test_float32_scores_equal_transformers(smollm2: Any, ct2_float32: Any) -> None:
    for prompt, options in SCORE_ITEMS:
        np.testing.assert_allclose(
            ct2_float32.score(prompt, options), smollm2.score(prompt, options), atol=1e-3
        )


def test_int8_keeps_the_order_of_clear_options(ct2_float32: Any, ct2_int8: Any) -> None:
    diffs = []
    for prompt, better, worse in CLEAR:
        exact = ct2_float32.score(prompt, [better, worse])
        quantized = ct2_int8.score(prompt, [better, worse])
        assert exact[0] > exact[1] + 3.0, exact
        assert quantized[0] > quantized[1] + 1.0, quantized
        diffs.append(np.abs(exact - quantized).max())
    for prompt, options in SCORE_ITEMS:
        diffs.append(
            np.abs(ct2_float32.score(prompt, options) - ct2_int8.score(prompt, options)).max()
        )
    print(f"int8 vs float32 log-prob differences (nats): max {max(diffs):.3f}, "
          f"mean {np.mean(diffs):.3f} over {len(diffs)} items")  # fmt: skip
    # A guard against broken quantization (garbage scores differ by tens of nats), not a
    # precision claim: int8 kernels depend on the CPU. Max 1.26 nats on an AVX-512 machine,
    # 5.06 on this project's AVX2-only one (no VNNI); the order test above is the claim.
    assert max(diffs) < 8.0


@pytest.mark.parametrize("fixture", ["ct2_float32", "ct2_int8", "smollm2"])
def test_batched_scoring_equals_one_by_one(fixture: str, request: pytest.FixtureRequest) -> None:
    llm = request.getfixturevalue(fixture)
    batched = score_many(llm, SCORE_ITEMS)
    single = [llm.score(prompt, options) for prompt, options in SCORE_ITEMS]
    assert len(batched) == len(SCORE_ITEMS)
    for b, s, (_, options) in zip(batched, single, SCORE_ITEMS, strict=True):
        assert b.shape == (len(options),)
        np.testing.assert_allclose(b, s, atol=1e-4)
    np.testing.assert_array_equal(batched[2], batched[4])  # the same prompt twice


def test_prefix_split_keeps_the_token_ids(ct2_int8: Any) -> None:
    for prompt in PROMPTS + [p for p, _ in SCORE_ITEMS]:
        ids, n_prefix = ct2_int8.encode_split(prompt)
        assert ids == ct2_int8.encode(prompt)
        assert 0 <= n_prefix < len(ids)
    a, na = ct2_int8.encode_split(SCORE_ITEMS[2][0])
    b, nb = ct2_int8.encode_split(SCORE_ITEMS[3][0])
    assert na == nb > 20 and a[:na] == b[:nb]  # the template text before the first fence
    assert ct2_int8.encode_split(RawPrompt("The capital of France is"))[1] == 0
    # The second split: through the first fenced field (the history), shared by one user.
    one, two, other = (ct2_int8.encode_splits(p) for p, _ in teacher_items(2, 2)[:3])
    assert one[0] != two[0] and one[1] == two[1] == other[1]
    assert one[1] < one[2] == two[2] < len(one[0]) and one[0][: one[2]] == two[0][: two[2]]
    assert one[0][: one[2]] != other[0][: other[2]]  # another user's history
    assert ct2_int8.encode_splits(PROMPTS[0])[2] == 0  # one fenced field: no second split


BOOKS = [
    "Dune by Frank Herbert", "Emma by Jane Austen", "Walden by Henry David Thoreau",
    "Hamlet by William Shakespeare", "Solaris by Stanislaw Lem", "Kindred by Octavia Butler",
    "Beloved by Toni Morrison", "Ulysses by James Joyce", "Dracula by Bram Stoker",
]  # fmt: skip


def teacher_fields(users: int, per_user: int) -> list[dict[str, str]]:
    """Fields of pairwise-teacher prompts: each user's 5-book history shared by their pairs."""
    out = []
    for u in range(users):
        history = "\n".join(f"- {BOOKS[(u + k) % len(BOOKS)]}" for k in range(5))
        for n in range(per_user):
            a, b = BOOKS[(u + 5 + n) % len(BOOKS)], BOOKS[(u + 6 + n) % len(BOOKS)]
            out.append({"history": history, "a": a, "b": b})
    return out


def teacher_items(users: int, per_user: int) -> list[tuple[Prompt, list[str]]]:
    """The real `PAIRWISE_TEMPLATE` prompts of `teacher_fields`, options A / B."""
    from recfuse.guidance.teachers import PAIRWISE_TEMPLATE

    return [(PAIRWISE_TEMPLATE.build(f), ["A", "B"]) for f in teacher_fields(users, per_user)]


def _both_paths(llm: Any, items: list[Any]) -> tuple[np.ndarray, np.ndarray, int, int]:
    """``(shared, template)`` scores of ``items`` [n, 2] and the tokens each path computed."""
    assert llm.shared_prefixes
    shared_before, computed_before = llm.stats.shared_prompts, llm.stats.computed_tokens
    shared = np.array(llm.score_many(items))
    computed_shared = llm.stats.computed_tokens - computed_before
    assert llm.stats.shared_prompts - shared_before == len(items)  # the shared path ran
    try:
        llm.shared_prefixes = False
        computed_before = llm.stats.computed_tokens
        template = np.array(llm.score_many(items))
        computed_template = llm.stats.computed_tokens - computed_before
    finally:
        llm.shared_prefixes = True
    return shared, template, computed_shared, computed_template


def test_shared_prefixes_give_the_template_path_scores(ct2_float32: Any, ct2_int8: Any) -> None:
    items = teacher_items(2, 6)
    exact, exact_template, computed, computed_template = _both_paths(ct2_float32, items)
    assert computed < 0.8 * computed_template  # each history computed once, not 6 times
    # float32: the same computation, so the same scores and choices.
    np.testing.assert_allclose(exact, exact_template, atol=1e-4)
    assert list(np.diff(exact)[:, 0] > 0) == list(np.diff(exact_template)[:, 0] > 0)
    single = np.array([ct2_float32.score(p, o) for p, o in items])  # one prompt: template path
    np.testing.assert_allclose(single, exact_template, atol=1e-4)
    # int8 moves with how a prompt is split into passes (a fully inline pass differs from the
    # template path as much): the shared path must be no further from float32 than that one.
    quantized, quantized_template, _, _ = _both_paths(ct2_int8, items)
    err, err_template = np.abs(quantized - exact).mean(), np.abs(quantized_template - exact).mean()
    print(f"int8 vs float32, mean |log-prob diff|: shared {err:.3f}, template {err_template:.3f};"
          f" shared vs template max {np.abs(quantized - quantized_template).max():.3f} nats;"
          f" computed tokens {computed_template} -> {computed}")  # fmt: skip
    assert err <= 1.25 * err_template + 0.05


def test_prefix_cache_stays_bounded_by_fresh_generators(ct2_int8: Any) -> None:
    from recfuse.llm.ctranslate2_backend import CTranslate2LLM

    items = teacher_items(5, 4)
    _, _, n_shared = ct2_int8.encode_splits(items[0][0])
    # Room for the template prefix and about two users' prefixes, then a fresh generator.
    budget_mb = 2.5 * n_shared * ct2_int8.state_bytes_per_token / 2**20
    small = CTranslate2LLM("smollm2", compute_type="int8", batch_size=8, prefix_cache_mb=budget_mb)
    bounded = []
    for u in range(5):  # one user per call, as a job's batches might split them
        bounded += small.score_many(items[4 * u : 4 * u + 4])
        assert small.stats.cached_tokens * small.state_bytes_per_token <= budget_mb * 2**20
        assert small.stats.cached_prefixes == len(small._cached) <= 2
    assert small.stats.reloads >= 2 and small.stats.shared_prompts == len(items)
    # A reload changes nothing: the same scores as the unbounded backend's, bit for bit.
    for got, expected in zip(bounded, ct2_int8.score_many(items), strict=True):
        np.testing.assert_array_equal(got, expected)


def test_auto_spec_picks_ctranslate2_with_matching_identity(ct2_int8: Any) -> None:
    spec = BackendSpec()
    assert spec.resolved_kind() == "ctranslate2"
    assert spec.effective_batch_size() == 32
    assert spec.identity() == (ct2_int8.backend, ct2_int8.model_id)
    assert BackendSpec(compute_type="float32").identity()[1] != ct2_int8.model_id


def test_hidden_states_delegate_to_transformers(ct2_int8: Any, smollm2: Any) -> None:
    states = ct2_int8.hidden_states(["Dune", "Emma"], layers=[0, -1])
    assert states.shape == (2, 2, 576)
    np.testing.assert_allclose(
        states, smollm2.hidden_states(["Dune", "Emma"], layers=[0, -1]), atol=1e-5
    )


class CountingScorer:
    """Delegates to a real backend; records how `score_many` and `score` are called."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.backend, self.model_id, self.batch_size = inner.backend, inner.model_id, 8
        self.many_calls: list[int] = []
        self.many_items: list[list[Any]] = []
        self.single_calls = 0

    def generate(self, prompts: Any, **kwargs: Any) -> Any:
        raise AssertionError("a score job must not generate")

    def score(self, prompt: Prompt, options: Any) -> np.ndarray:
        self.single_calls += 1
        return self.inner.score(prompt, options)

    def score_many(self, items: Any) -> list[np.ndarray]:
        self.many_calls.append(len(items))
        self.many_items.append(list(items))
        return self.inner.score_many(items)


def test_score_job_runs_in_large_batches_and_stores_the_scores(ct2_int8: Any, tmp_path) -> None:
    from recfuse.llm import LLMJob, PromptRecord

    books = ["Dune", "Emma", "Hyperion", "Walden", "Solaris", "Kindred", "Beloved", "Ulysses"]
    records = [
        PromptRecord(f"{a}-{b}", {"history": "Dune; Solaris", "a": a, "b": b})
        for a in books
        for b in books
        if a < b
    ]
    counting = CountingScorer(ct2_int8)
    job = LLMJob("pairs", records, PAIRWISE, backend=counting, task="score",
                 options=["A", "B"], cache=tmp_path / "c.sqlite", progress=False)  # fmt: skip
    report = job.run()
    assert report.completed == len(records) == 28
    assert counting.many_calls == [28] and counting.single_calls == 0  # one batched call
    stored = {r["id"]: r["parsed"] for r in job.cache.job_outputs("pairs")}
    for record in records[:5]:
        expected = ct2_int8.score(PAIRWISE.build(record.fields), ["A", "B"])
        got = stored[record.id]["logprobs"]
        np.testing.assert_allclose([got["A"], got["B"]], expected, atol=1e-6)
        assert sum(stored[record.id]["probs"].values()) == pytest.approx(1.0)
    assert job.run().completed == 0  # cached: a rerun computes nothing
    assert counting.many_calls == [28]


def test_score_job_keeps_each_users_prompts_in_one_batch(ct2_int8: Any, tmp_path) -> None:
    from recfuse.guidance.teachers import PAIRWISE_TEMPLATE
    from recfuse.llm import LLMJob, PromptRecord

    records = [PromptRecord(str(n), f) for n, f in enumerate(teacher_fields(3, 4))]
    counting = CountingScorer(ct2_int8)
    job = LLMJob("users", records, PAIRWISE_TEMPLATE, backend=counting, task="score",
                 options=["A", "B"], cache=tmp_path / "c.sqlite", progress=False)  # fmt: skip
    assert job.run(batch_size=4).completed == 12
    assert counting.many_calls == [4, 4, 4]
    for batch in counting.many_items:  # one user's history per call, not a length-sorted mix
        shared = {tuple(ids[:n]) for ids, _, n in (ct2_int8.encode_splits(p) for p, _ in batch)}
        assert len(shared) == 1
