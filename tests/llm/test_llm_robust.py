"""Issue 14 item 11 for the LLM runtime: special tokens, JSON answers, Retry-After, prompt echoes,
a damaged cache."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from recfuse.errors import DataError
from recfuse.features.captions import caption_prompt
from recfuse.llm import http_backend
from recfuse.llm.base import GenerationParams
from recfuse.llm.cache import LLMCache, OutputRow
from recfuse.llm.cli import app
from recfuse.llm.http_backend import HTTPLLM
from recfuse.llm.parsing import JsonParser, ParseFailure, check_echo, model_from_fields
from recfuse.llm.prompts import neutralize
from recfuse.llm.work import prompt_text


def test_every_special_token_of_smollm2_is_defused(smollm2: Any) -> None:
    tok = smollm2.tokenizer
    specials = {int(i) for i, t in tok.added_tokens_decoder.items() if t.special}
    assert len(specials) == 17
    for token_id in sorted(specials):
        token = tok.convert_ids_to_tokens(token_id)
        ids = tok(neutralize(f"a title {token} more"), add_special_tokens=False).input_ids
        assert not specials & set(ids), token


def _answer(text: str) -> dict[str, Any]:
    return JsonParser(model_from_fields({"genre": "fiction|nonfiction"})).parse(text)


def test_json_answer_is_the_whole_output_or_the_one_fenced_block() -> None:
    assert _answer('{"genre": "fiction"}') == {"genre": "fiction"}
    assert _answer('Here:\n```json\n{"genre": "nonfiction"}\n```') == {"genre": "nonfiction"}
    bad = [
        # an object quoted from the prompt, then the real answer: the first one used to win
        'The example was {"genre": "fiction"} but I say {"genre": "nonfiction"}',
        'Sure! {"genre": "fiction"} is my answer',
        '```json\n{"genre": "fiction"}\n```\n```json\n{"genre": "nonfiction"}\n```',
    ]
    for text in bad:
        with pytest.raises(ParseFailure):
            _answer(text)


class _Busy(BaseHTTPRequestHandler):
    calls = 0

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        type(self).calls += 1
        self.rfile.read(int(self.headers.get("content-length", 0)))
        if type(self).calls == 1:
            self.send_response(429)
            self.send_header("Retry-After", "86400")
            self.end_headers()
            return
        body = json.dumps(
            {"choices": [{"text": "ok", "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 1, "completion_tokens": 1}}
        ).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def busy_server() -> Iterator[str]:
    _Busy.calls = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_retry_after_is_capped(busy_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(http_backend.time, "sleep", waits.append)
    client = HTTPLLM(busy_server, "m", max_retries=2, backoff_s=0.01, chat_format="raw")
    client.generate(["hi"], GenerationParams(max_tokens=2))
    assert _Busy.calls == 2 and waits and max(waits) <= http_backend.MAX_RETRY_AFTER_S


def test_prompt_echo_captions_are_failures_not_ok() -> None:
    title = "Dune: a desert planet, spice, and a boy who becomes a prophet"
    prompt = prompt_text(caption_prompt(title))
    echoes = [
        "Summarize what this item is about in one short sentence.",
        f"item\n{title}",
        f"<<<DATA item\n{title}\nDATA>>>",
        "Dune: a desert planet, spice, and a boy who becomes a prophet.",
    ]
    for text in echoes:
        with pytest.raises(ParseFailure, match="echo"):
            check_echo(text, prompt)
    for caption in ("A science fiction epic about politics and survival on a desert world.",
                    "Dune is a classic novel about a young heir on a harsh planet."):  # fmt: skip
        check_echo(caption, prompt)  # answers that mention the item are fine


def _cache_with_a_job(path: Path, n: int = 400) -> None:
    with LLMCache(path) as cache:
        rows = [
            OutputRow(f"k{i:04d}", "b", "m", "t", {"raw": "p" * 200}, {}, "ok", "x" * 200,
                      {"v": i}, None, 1, 1, 1, 0.1)
            for i in range(n)
        ]  # fmt: skip
        cache.put_many(rows)
        cache.register_job("j", {}, [(f"p{i}", f"k{i:04d}") for i in range(n)])
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def test_damaged_cache_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    _cache_with_a_job(path)
    with sqlite3.connect(path) as conn:  # a stored value that no longer decodes
        conn.execute("UPDATE outputs SET parsed = '{broken' WHERE key = 'k0007'")
    runner = CliRunner()
    result = runner.invoke(app, ["export", "j", "--cache", str(path), "--out", str(tmp_path / "o")])
    assert isinstance(result.exception, DataError) and "damaged" in str(result.exception)
    raw = bytearray(path.read_bytes())
    page = 4096
    raw[5 * page : 5 * page + 100] = b"\xa5" * 100  # a damaged b-tree page
    path.write_bytes(bytes(raw))
    for args in (["status", "--cache", str(path)], ["export", "j", "--cache", str(path),
                                                     "--out", str(tmp_path / "o2")]):  # fmt: skip
        result = runner.invoke(app, args)
        assert isinstance(result.exception, DataError), (args, result.exception)
    with pytest.raises(DataError, match="not a usable LLM cache"), LLMCache(path) as cache:
        list(cache.job_outputs("j"))
