"""`recfuse llm serve` codes against the `LLM` interface: a backend without streaming or token
log-probabilities still serves (control flow only, with the scripted `FakeScriptedLLM`)."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

from recfuse.llm.serve import create_app
from recfuse.llm.serve_schema import ServeLimits


def test_a_backend_without_streaming_still_streams_and_refuses_logprobs(fake_llm: Any) -> None:
    llm = fake_llm({"capital": ["Paris, of course."]})
    client = TestClient(create_app(llm, ServeLimits(max_tokens=8)))
    assert client.get("/v1/models").json()["data"][0]["id"] == "fake-scripted"
    messages = [{"role": "user", "content": "The capital of France?"}]
    with client.stream(
        "POST", "/v1/chat/completions", json={"messages": messages, "stream": True}
    ) as response:
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    # No generate_stream: the whole answer arrives as one piece when generate returns.
    contents = [c["choices"][0]["delta"].get("content") for c in chunks]
    assert contents == ["", "Paris, of course.", None]
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    refused = client.post("/v1/completions", json={"prompt": "x", "logprobs": 1})
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "unsupported_parameter"
    plain = client.post("/v1/completions", json={"prompt": "x", "max_tokens": 2}).json()
    assert plain["choices"][0]["text"] == "ok" and plain["usage"]["completion_tokens"] == 3
    assert client.post("/v1/completions", json={"prompt": "x", "max_tokens": 9}).status_code == 400
