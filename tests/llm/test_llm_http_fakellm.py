"""The HTTP backend, streaming and not, against a second and independent OpenAI-compatible server.

`fakellm` (PyPI, MIT; its own FastAPI app and SSE writer, no code shared with recfuse) answers
``/v1/chat/completions`` from YAML rules, streaming word by word. It is a scripted server, not a
model: what it checks is wire compatibility of `HTTPLLM` with someone else's implementation, and
the client's own stop handling (fakellm ignores ``stop``). A real model behind an independent
server (llama-cpp-python's) needs a 7-minute native build that this machine's queue did not allow;
see docs/llm.md.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from recfuse.llm.base import BackendError, GenerationParams, generate_streaming
from recfuse.llm.http_backend import HTTPLLM

pytest.importorskip("fakellm", reason="make install adds fakellm (--no-deps)")

ANSWER = "Paris is the capital of France, and has been for a very long time."
CONFIG = f"""rules:
  - name: capital
    when:
      messages_contain: "capital"
    respond:
      content: "{ANSWER}"
  - name: broken
    when:
      messages_contain: "please fail"
    respond:
      status: 400
      error: "scripted failure"
"""


@pytest.fixture(scope="module")
def fake_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder: Path = tmp_path_factory.mktemp("fakellm")
    (folder / "fakellm.yaml").write_text(CONFIG)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-c", "from fakellm.cli import main; main()", "serve"]
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--config", "fakellm.yaml"]
    log = (folder / "server.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (folder / "server.log").read_text()
            try:
                if httpx.get(url + "/_fakellm/stats", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "fakellm did not start"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


QUESTION = "What is the capital of France?"


def test_streamed_pieces_join_to_the_unstreamed_answer(fake_url: str, collect: Any) -> None:
    llm = HTTPLLM(fake_url, "gpt-4o-mini", timeout_s=10, max_retries=0)
    pieces: list[str] = []
    streamed = llm.generate_stream(
        [QUESTION], GenerationParams(max_tokens=64), on_text=collect(pieces)
    )
    assert len(pieces) > 5 and "".join(pieces) == streamed[0].text == ANSWER
    assert llm.generate([QUESTION], GenerationParams(max_tokens=64))[0].text == ANSWER
    assert streamed[0].finish_reason == "stop"


def test_the_client_cuts_stop_strings_the_server_ignores(fake_url: str, collect: Any) -> None:
    llm = HTTPLLM(fake_url, "gpt-4o-mini", timeout_s=10, max_retries=0)
    pieces: list[str] = []
    out = generate_streaming(
        llm,
        [QUESTION],
        GenerationParams(max_tokens=64, stop=(" capital",)),
        collect(pieces),
    )
    # " capital" arrives split across words; nothing of it is ever handed out.
    assert out[0].text == "Paris is the" == "".join(pieces)
    assert out[0].finish_reason == "stop"
    assert (
        llm.generate([QUESTION], GenerationParams(stop=tuple([" capital"])))[0].text
        == "Paris is the"
    )


def test_on_text_false_stops_reading_and_errors_are_raised(fake_url: str) -> None:
    llm = HTTPLLM(fake_url, "gpt-4o-mini", timeout_s=10, max_retries=0)
    first = llm.generate_stream([QUESTION], on_text=lambda row, piece: False)
    assert first[0].text and len(first[0].text) < len(ANSWER)
    # (fakellm applies error rules to unstreamed requests only.)
    with pytest.raises(BackendError, match="scripted failure"):
        llm.generate(["please fail"])
