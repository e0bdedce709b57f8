"""The HTTP backend against a real `recfuse llm serve` process on 127.0.0.1 serving SmolLM2."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from recfuse.errors import ConfigError
from recfuse.llm import (
    BackendSpec,
    GenerationParams,
    LLMCache,
    LLMJob,
    PromptRecord,
    PromptTemplate,
    RawPrompt,
)
from recfuse.llm.base import BackendError, CapabilityError
from recfuse.llm.http_backend import HTTPLLM, render_chatml

QUESTION = "What is the capital of France? Answer with one word."


@pytest.mark.slow
def test_http_generate_and_score_through_a_real_server(server_url: str, smollm2) -> None:
    client = HTTPLLM(server_url, "smollm2", timeout_s=60, concurrency=2)
    assert client.get_models() == ["smollm2"]

    gens = client.generate(
        [QUESTION, RawPrompt("The capital of France is")], GenerationParams(max_tokens=8)
    )
    assert all(g.text.strip() for g in gens)
    assert gens[0].prompt_tokens > 5 and 0 < gens[0].completion_tokens <= 8
    # Greedy decoding of the same weights: the server answers what the local backend answers.
    assert gens[0].text == smollm2.generate([QUESTION], GenerationParams(max_tokens=8))[0].text

    scores = client.score(QUESTION, ["Paris", "banana"])
    assert scores[0] > scores[1] + 3.0, scores
    # The client renders ChatML itself for scoring; the same text scored locally agrees.
    local = smollm2.score(
        RawPrompt(render_chatml([{"role": "user", "content": QUESTION}])), ["Paris", "banana"]
    )
    np.testing.assert_allclose(scores, local, atol=0.05)

    with pytest.raises(CapabilityError):
        client.hidden_states(["x"], [1])


@pytest.mark.slow
def test_job_through_the_http_backend_is_cached(server_url: str, tmp_path) -> None:
    spec = BackendSpec(kind="http", base_url=server_url, model="smollm2", concurrency=2)
    records = [PromptRecord(str(i), {"title": t}) for i, t in enumerate(["Dune", "Emma"])]
    template = PromptTemplate(user="In one short sentence, what is this book about?\n{title}")
    cache = LLMCache(tmp_path / "c.sqlite")
    job = LLMJob(
        "http-job",
        records,
        template,
        spec,
        params=GenerationParams(max_tokens=6),
        cache=cache,
        progress=False,
    )
    first = job.run()
    assert first.completed + first.failed == 2 and first.completion_tokens > 0
    again = job.run()
    assert again.already_done == 2 and again.completed + again.failed == 0
    assert {r["status"] for r in cache.job_outputs("http-job")} <= {"ok", "failed"}


def test_http_retries_with_backoff_then_fails_clearly() -> None:
    with socket.socket() as sock:  # a port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = HTTPLLM(f"http://127.0.0.1:{port}", "m", max_retries=2, backoff_s=0.01, timeout_s=2)
    with pytest.raises(BackendError, match="after 3 tries"):
        client.generate(["hi"], GenerationParams(max_tokens=2))
    assert client.retries_used == 2


def test_http_key_comes_from_a_named_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECFUSE_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="RECFUSE_TEST_KEY"):
        HTTPLLM("http://127.0.0.1:9", "m", api_key_env="RECFUSE_TEST_KEY")
    monkeypatch.setenv("RECFUSE_TEST_KEY", "s3cret")
    client = HTTPLLM("http://127.0.0.1:9", "m", api_key_env="RECFUSE_TEST_KEY")
    assert client.client.headers["Authorization"] == "Bearer s3cret"
    assert "s3cret" not in client.model_id
    with pytest.raises(ConfigError, match="base_url"):
        HTTPLLM("127.0.0.1:9", "m")


@pytest.mark.slow
def test_server_answers_bad_requests_with_400_and_echoes_logprobs(smollm2) -> None:
    from fastapi.testclient import TestClient

    from recfuse.llm.serve import create_app

    client = TestClient(create_app(smollm2))
    assert client.get("/health").json()["status"] == "ok"
    bad = client.post("/v1/chat/completions", json={"messages": [{"role": "tool", "content": "x"}]})
    assert bad.status_code == 400 and "role" in bad.json()["error"]["message"]
    negative = client.post("/v1/completions", json={"prompt": "x", "max_tokens": -1})
    assert negative.status_code == 400 and negative.json()["error"]["param"] == "max_tokens"
    body = client.post(
        "/v1/completions",
        json={
            "prompt": "The capital of France is Paris",
            "max_tokens": 0,
            "echo": True,
            "logprobs": 0,
        },
    ).json()
    logprobs = body["choices"][0]["logprobs"]
    assert body["choices"][0]["text"] == "The capital of France is Paris"
    assert logprobs["token_logprobs"][0] is None and len(logprobs["tokens"]) >= 6
    assert "".join(logprobs["tokens"]) == "The capital of France is Paris"
    assert all(v < 0 for v in logprobs["token_logprobs"][1:])
