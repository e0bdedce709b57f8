"""The SQLite cache: content-addressed keys, raw and parsed apart, answers never overwritten."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from recfuse.errors import DataError
from recfuse.llm.cache import LLMCache, OutputRow, cache_key

PROMPT = {"chat": [{"role": "user", "content": "hi"}]}
PARAMS = {"task": "generate", "max_tokens": 8, "temperature": 0.0}


def _row(key: str, status: str = "ok", raw: str = "text", parsed: object = "text") -> OutputRow:
    return OutputRow(
        key,
        "transformers",
        "m-1",
        "v1:abc",
        PROMPT,
        PARAMS,
        status,
        raw,
        parsed if status == "ok" else None,
        None if status == "ok" else "schema: x",
        1,
        10,
        3,
        0.5,
    )


def test_key_depends_on_every_part() -> None:
    base = cache_key("transformers", "m-1", "v1:abc", PROMPT, PARAMS)
    assert base == cache_key(
        "transformers", "m-1", "v1:abc", PROMPT, dict(reversed(PARAMS.items()))
    )
    variants = [
        cache_key("http", "m-1", "v1:abc", PROMPT, PARAMS),
        cache_key("transformers", "m-2", "v1:abc", PROMPT, PARAMS),
        cache_key("transformers", "m-1", "v2:abc", PROMPT, PARAMS),
        cache_key("transformers", "m-1", "v1:abc", {"raw": "hi"}, PARAMS),
        cache_key("transformers", "m-1", "v1:abc", PROMPT, {**PARAMS, "max_tokens": 9}),
    ]
    assert len({base, *variants}) == 6
    assert len(base) == 64


def test_raw_and_parsed_are_stored_apart_and_answers_are_kept(tmp_path: Path) -> None:
    with LLMCache(tmp_path / "c.sqlite") as cache:
        assert cache.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert cache.put_many([_row("a", raw='{"x": 1} trailing', parsed={"x": 1})]) == 1
        got = cache.get("a")
        assert got is not None and got.raw_text == '{"x": 1} trailing' and got.parsed == {"x": 1}
        # An ok answer is never overwritten ...
        assert cache.put_many([_row("a", raw="other")]) == 0
        assert cache.get("a").raw_text == '{"x": 1} trailing'
        # ... a failure is kept with its reason, and a deliberate retry replaces it.
        cache.put_many([_row("b", status="failed", raw="garbage")])
        assert cache.get("b").reason == "schema: x" and cache.get("b").parsed is None
        assert cache.done_keys(["a", "b", "c"]) == {"a", "b"}
        assert cache.done_keys(["a", "b", "c"], include_failed=False) == {"a"}
        assert cache.put_many([_row("b", raw="fixed")]) == 1
        fixed = cache.get("b")
        assert fixed.status == "ok" and fixed.attempts == 2 and fixed.completion_tokens == 6


def test_job_status_and_outputs_in_order(tmp_path: Path) -> None:
    with LLMCache(tmp_path / "c.sqlite") as cache:
        cache.register_job("j", {"x": 1}, [("p2", "k2"), ("p1", "k1"), ("p3", "k3")])
        cache.put_many([_row("k1"), dataclasses.replace(_row("k3", status="failed"))])
        status = cache.status("j")
        assert (status.total, status.ok, status.failed, status.remaining) == (3, 1, 1, 1)
        assert status.failure_reasons == {"schema": 1}
        assert status.prompt_tokens == 20
        rows = list(cache.job_outputs("j"))
        assert [r["id"] for r in rows] == ["p2", "p1", "p3"]
        assert [r["status"] for r in rows] == ["pending", "ok", "failed"]
        # Re-registering replaces the prompt set (a changed template gives new keys).
        cache.register_job("j", {"x": 2}, [("p1", "k1")])
        assert cache.status("j").total == 1
        with pytest.raises(DataError, match="no job named 'nope'"):
            cache.status("nope")


def test_a_file_that_is_not_sqlite_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_text("not a database at all, just text " * 100)
    with pytest.raises(DataError, match="not a usable LLM cache"):
        LLMCache(bad)
