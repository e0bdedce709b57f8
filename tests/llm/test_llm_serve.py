"""`recfuse llm serve` driven by the official `openai` client, and raw HTTP for what it cannot send.

One real server process (SmolLM2, one torch thread, ``--max-tokens 48``) on a free 127.0.0.1
port serves the whole module; the last test stops it with SIGTERM.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from recfuse.llm.base import BackendError, GenerationParams, Prompt, RawPrompt, generate_streaming
from recfuse.llm.http_backend import HTTPLLM

openai = pytest.importorskip("openai")
pytestmark = pytest.mark.slow

CAP = 32  # the server's --max-tokens
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer with one word."}]
POEM = [{"role": "user", "content": "Write a short poem about the sea."}]
COUNT = "1, 2, 3, 4, 5,"  # greedy SmolLM2 keeps counting: no end of sequence within CAP tokens


@pytest.fixture(scope="module")
def server(start_server: Any) -> Iterator[Any]:
    served = start_server("--max-tokens", str(CAP), "--max-body-bytes", "1000000")
    yield served
    served.stop()


@pytest.fixture(scope="module")
def client(server: Any) -> Any:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)


def _health(server: Any) -> dict[str, int]:
    url = server.base_url.removesuffix("/v1") + "/health"
    return dict(httpx.get(url, timeout=10).json()["batching"])


def _wait_idle(server: Any, batches: int, timeout_s: float = 60) -> dict[str, int]:
    """Stats once more than ``batches`` batches have finished."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stats = _health(server)
        if stats["batches"] > batches:
            return stats
        time.sleep(0.1)
    raise AssertionError("the server never finished the batch")


def test_models_chat_completion_echo_and_logprobs(client: Any) -> None:
    assert [m.id for m in client.models.list()] == ["smollm2"]
    chat = client.chat.completions.create(
        model="smollm2", messages=QUESTION, max_tokens=8, temperature=0
    )
    assert "Paris" in chat.choices[0].message.content
    assert chat.usage.completion_tokens <= 8 and chat.choices[0].finish_reason in ("stop", "length")
    done = client.completions.create(
        model="smollm2", prompt="The capital of France is", max_tokens=3, temperature=0
    )
    assert done.choices[0].text.strip() and done.usage.prompt_tokens == 5
    echo = client.completions.create(
        model="smollm2", prompt="The capital of France is Paris", max_tokens=0, echo=True,
        logprobs=2,
    )  # fmt: skip
    lp = echo.choices[0].logprobs
    assert echo.choices[0].text == "The capital of France is Paris"
    assert "".join(lp.tokens) == echo.choices[0].text and lp.token_logprobs[0] is None
    assert all(v < 0 for v in lp.token_logprobs[1:])
    # top_logprobs: two alternatives per position, the best at least as likely as the token.
    assert all(len(t) == 2 and max(t.values()) >= v - 1e-4 for t, v in
               zip(lp.top_logprobs[1:], lp.token_logprobs[1:], strict=True))  # fmt: skip


def _timed_chunks(stream: Any) -> tuple[list[tuple[float, Any]], float]:
    started = time.perf_counter()
    return [(time.perf_counter() - started, c) for c in stream], started


def test_chat_stream_arrives_in_pieces_and_joins_to_the_greedy_answer(client: Any) -> None:
    whole = client.chat.completions.create(
        model="smollm2", messages=POEM, max_tokens=16, temperature=0
    )
    stream = client.chat.completions.create(
        model="smollm2", messages=POEM, max_tokens=16, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )  # fmt: skip
    chunks, _ = _timed_chunks(stream)
    texts = [(t, c.choices[0].delta.content) for t, c in chunks if c.choices]
    pieces = [(t, d) for t, d in texts if d]
    assert len(pieces) >= 5, chunks
    # Chunks arrive while the answer is being written, not all at once at the end.
    assert pieces[-1][0] - pieces[0][0] > 0.2, pieces
    assert "".join(d for _, d in pieces) == whole.choices[0].message.content
    assert chunks[-1][1].choices == [] and chunks[-1][1].usage == whole.usage
    assert [c.choices[0].finish_reason for _, c in chunks if c.choices][-1] == "length"


def test_completion_stream_joins_to_the_greedy_answer(client: Any) -> None:
    whole = client.completions.create(model="smollm2", prompt=COUNT, max_tokens=12, temperature=0)
    stream = client.completions.create(
        model="smollm2", prompt=COUNT, max_tokens=12, temperature=0, stream=True
    )
    pieces = [c.choices[0].text for c in stream if c.choices]
    assert len([p for p in pieces if p]) >= 3
    assert "".join(pieces) == whole.choices[0].text


def test_n_choices_and_seed(client: Any) -> None:
    def ask(**kw: Any) -> list[str]:
        out = client.chat.completions.create(
            model="smollm2", messages=POEM, max_tokens=6, n=2, **kw
        )
        assert [c.index for c in out.choices] == [0, 1]
        return [c.message.content for c in out.choices]

    sampled = ask(temperature=1.0, seed=7)
    assert sampled[0] != sampled[1]  # two samples, not one answer twice
    assert ask(temperature=1.0, seed=7) == sampled  # the seed reproduces them
    assert ask(temperature=1.0, seed=8) != sampled
    greedy = ask(temperature=0)
    assert greedy[0] == greedy[1]


def test_stop_strings_cut_the_answer_streamed_or_not(client: Any) -> None:
    kw: dict[str, Any] = {"model": "smollm2", "prompt": COUNT, "max_tokens": 10, "temperature": 0}
    free = client.completions.create(**kw).choices[0].text
    assert " 8," in free  # the stop string would be generated
    cut = client.completions.create(**kw, stop=[" 8,", "never"]).choices[0]
    assert cut.text == free[: free.index(" 8,")] and cut.finish_reason == "stop"
    streamed = client.completions.create(**kw, stop=" 8,", stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == cut.text
    chat = client.chat.completions.create(
        model="smollm2", messages=QUESTION, max_completion_tokens=8, temperature=0, stop="Paris"
    )
    assert "Paris" not in chat.choices[0].message.content


Q = {"messages": QUESTION}
ERRORS: list[tuple[str, Any, int, str | None, str]] = [
    # (endpoint, body, status, param, code): each documented refusal (docs/llm.md).
    ("chat", {"messages": []}, 400, "messages", "invalid_value"),
    ("chat", {**Q, "temperature": float("nan")}, 400, "temperature", "invalid_value"),
    ("chat", {**Q, "temperature": float("inf")}, 400, "temperature", "invalid_value"),
    ("chat", {**Q, "temperature": 2.5}, 400, "temperature", "invalid_value"),
    ("chat", {**Q, "seed": 2**70}, 400, "seed", "invalid_value"),
    ("chat", {**Q, "max_tokens": 10**6}, 400, "max_tokens", "invalid_value"),
    ("chat", {**Q, "max_completion_tokens": 0}, 400, "max_completion_tokens", "invalid_value"),
    ("chat", {**Q, "max_tokens": 5, "max_completion_tokens": 6}, 400, "max_tokens", "invalid_value"),
    ("chat", {**Q, "n": 9}, 400, "n", "invalid_value"),
    ("chat", {**Q, "stop": [""]}, 400, "stop", "invalid_value"),
    ("chat", {**Q, "stop": ["a", "b", "c", "d", "e"]}, 400, "stop", "invalid_value"),
    ("chat", {**Q, "stream_options": {"include_usage": True}}, 400, "stream_options", "invalid_value"),
    ("chat", {"messages": [{"role": "tool", "content": "x"}]}, 400, "messages.0.role", "invalid_value"),
    ("chat", {**Q, "top_p": 0.5}, 400, "top_p", "unsupported_parameter"),
    ("chat", {**Q, "presence_penalty": 1}, 400, "presence_penalty", "unsupported_parameter"),
    ("chat", {**Q, "tools": [{"type": "function"}]}, 400, "tools", "unsupported_parameter"),
    ("chat", {**Q, "logprobs": True}, 400, "logprobs", "unsupported_parameter"),
    ("chat", {**Q, "response_format": {"type": "json_object"}}, 400, "response_format", "unsupported_parameter"),
    ("chat", {**Q, "frobnicate": 1}, 400, "frobnicate", "unrecognized_argument"),
    ("chat", {**Q, "model": "gpt-4o"}, 404, "model", "model_not_found"),
    ("chat", b'{"messages": [{"role": "user", "content": "\\ud800"}]}', 400, None, "invalid_json"),
    ("chat", b'{"messages": ', 400, None, "invalid_json"),
    ("completions", {"prompt": ""}, 400, "prompt", "invalid_value"),
    ("completions", {"prompt": []}, 400, "prompt", "invalid_value"),
    ("completions", {"prompt": [1, 2, 3]}, 400, "prompt", "unsupported_parameter"),
    ("completions", {"prompt": "x", "max_tokens": 0}, 400, "max_tokens", "invalid_value"),
    ("completions", {"prompt": "x", "max_tokens": -1}, 400, "max_tokens", "invalid_value"),
    ("completions", {"prompt": "x", "logprobs": 6}, 400, "logprobs", "invalid_value"),
    ("completions", {"prompt": "x", "logprobs": 1, "stream": True}, 400, "logprobs", "unsupported_parameter"),
    ("completions", {"prompt": "x", "best_of": 3}, 400, "best_of", "unsupported_parameter"),
    ("completions", {"prompt": "x", "suffix": "y"}, 400, "suffix", "unsupported_parameter"),
    ("completions", {"prompt": "x" * 40_000}, 400, "prompt", "context_length_exceeded"),
]  # fmt: skip


@pytest.mark.parametrize(("endpoint", "body", "status", "param", "code"), ERRORS)
def test_each_documented_error(
    server: Any, endpoint: str, body: Any, status: int, param: str | None, code: str
) -> None:
    path = "/chat/completions" if endpoint == "chat" else "/completions"
    # json.dumps writes NaN and Infinity literally, as a careless client would.
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(server.base_url + path, content=raw, timeout=30)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert (error["param"], error["code"]) == (param, code), error


def test_the_official_client_raises_the_documented_errors(client: Any) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="smollm2", messages=QUESTION, top_p=0.5)
    assert bad.value.status_code == 400 and bad.value.param == "top_p"
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=QUESTION)
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="smollm2", messages=QUESTION, max_tokens=CAP + 1)


def test_a_20_mb_body_is_refused_quickly(server: Any) -> None:
    started = time.perf_counter()
    body = b'{"prompt": "' + b"a" * 20_000_000 + b'"}'
    response = httpx.post(server.base_url + "/completions", content=body, timeout=30)
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    assert time.perf_counter() - started < 10


def test_concurrent_clients_are_batched_and_each_gets_its_own_answer(
    client: Any, server: Any
) -> None:
    prompts = [f"The capital of {c} is" for c in
               ("France", "Italy", "Spain", "Japan", "Egypt", "Peru", "Chile", "Kenya")]  # fmt: skip

    def ask(prompt: str) -> str:
        out = client.completions.create(model="smollm2", prompt=prompt, max_tokens=4, temperature=0)
        return str(out.choices[0].text)

    alone = [ask(p) for p in prompts]
    before = _health(server)
    with ThreadPoolExecutor(max_workers=8) as pool:
        together = list(pool.map(ask, prompts))
    after = _health(server)
    assert together == alone
    assert len(set(alone)) > 4  # distinct answers: a mix-up between clients would show
    assert after["batches"] - before["batches"] < 8  # some requests shared a forward pass
    assert after["largest_batch"] >= 2


def test_a_client_that_hangs_up_stops_its_decoding(server: Any) -> None:
    body = {"prompt": COUNT, "max_tokens": CAP, "temperature": 0, "stream": True}
    before = _health(server)
    with httpx.stream("POST", server.base_url + "/completions", json=body, timeout=60) as r:
        got: list[str] = []
        for line in r.iter_lines():
            if line.startswith("data:"):
                got.append(line)
            if len(got) == 2:
                break  # leaving the block closes the connection
    after = _wait_idle(server, before["batches"])
    assert after["completion_tokens"] - before["completion_tokens"] < CAP // 2
    assert after["cancelled"] == before["cancelled"] + 1
    # Without streaming: the client times out and goes away; the server notices within 0.25 s.
    before = after
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.base_url + "/completions", json={**body, "stream": False}, timeout=1.0)
    after = _wait_idle(server, before["batches"])
    assert after["completion_tokens"] - before["completion_tokens"] < CAP
    assert after["cancelled"] == before["cancelled"] + 1


def test_a_long_request_does_not_starve_a_short_one(client: Any) -> None:
    """A request waits for at most the batch in flight, which ``--max-tokens`` bounds."""
    timings: dict[str, float] = {}

    def timed(name: str, **kw: Any) -> None:
        started = time.perf_counter()
        client.completions.create(model="smollm2", prompt=COUNT, temperature=0, **kw)
        timings[name] = time.perf_counter() - started

    solo = time.perf_counter()
    timed("short_alone", max_tokens=2)
    long = threading.Thread(target=timed, args=("long",), kwargs={"max_tokens": CAP})
    long.start()
    time.sleep(0.3)
    timed("short", max_tokens=2)
    long.join()
    assert timings["short"] < timings["long"] + 3 * timings["short_alone"] + 2.0, (timings, solo)


def test_http_backend_streams_from_recfuse_serve(server: Any, collect: Any) -> None:
    llm = HTTPLLM(server.base_url, "smollm2", timeout_s=60, concurrency=2)
    prompts: list[Prompt] = [QUESTION, RawPrompt(COUNT)]
    pieces: dict[int, list[str]] = {0: [], 1: []}
    streamed = llm.generate_stream(
        prompts,
        GenerationParams(max_tokens=8),
        on_text=lambda row, piece: collect(pieces[row])(row, piece),
    )
    plain = llm.generate(prompts, GenerationParams(max_tokens=8))
    assert [g.text for g in streamed] == [g.text for g in plain]
    assert all(len(pieces[i]) >= 3 and "".join(pieces[i]) == streamed[i].text for i in (0, 1))
    assert streamed[1].completion_tokens == 8  # usage from the last event
    # on_text returning False closes the stream: the answer stops early.
    early = generate_streaming(
        llm, [RawPrompt(COUNT)], GenerationParams(max_tokens=8), lambda row, piece: False
    )
    assert len(early[0].text) < len(plain[1].text)
    with pytest.raises(BackendError, match="max_tokens"):  # a refusal before any event
        llm.generate_stream([QUESTION], GenerationParams(max_tokens=CAP + 1))


def test_sigterm_stops_decoding_and_the_server_exits_promptly(server: Any) -> None:
    """Last in this module: it stops the module's server."""
    body = {"prompt": COUNT, "max_tokens": CAP, "temperature": 0, "stream": True}
    events: list[str] = []
    with httpx.stream("POST", server.base_url + "/completions", json=body, timeout=60) as r:
        for line in r.iter_lines():
            if line.startswith("data:"):
                events.append(line)
                if len(events) == 2:
                    server.process.send_signal(signal.SIGTERM)
                    signalled = time.perf_counter()
    server.process.wait(timeout=30)
    assert time.perf_counter() - signalled < 5.0
    # uvicorn re-raises the signal once it has shut down cleanly, so the status says SIGTERM.
    assert server.process.returncode in (0, -signal.SIGTERM)
    # The stream ended early with an error event, not a normal finish.
    assert len(events) < CAP and "shutting down" in events[-1], events[-3:]
