"""The one content-addressed store for LLM outputs: SQLite in WAL mode.

An output's key is the SHA-256 of (backend, model weights id, prompt-template version, prompt,
parameters); the same question asked by any job is answered once. Raw text and the parsed value
live in separate columns, and a failure is a row too (status ``failed`` with its reason), so
nothing is silently dropped. Jobs map their prompt ids to keys in ``job_items``.

Only one process writes (the job's driver); every write is its own short transaction, so a
killed job loses at most the batch it was computing.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from recfuse.data.locate import cache_root
from recfuse.errors import DataError

SCHEMA = """
CREATE TABLE IF NOT EXISTS outputs (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    template TEXT NOT NULL,
    prompt TEXT NOT NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    raw_text TEXT,
    parsed TEXT,
    reason TEXT,
    attempts INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    seconds REAL NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    job TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS job_items (
    job TEXT NOT NULL,
    prompt_id TEXT NOT NULL,
    key TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (job, prompt_id)
);
CREATE INDEX IF NOT EXISTS job_items_key ON job_items (key);
CREATE TABLE IF NOT EXISTS job_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job TEXT NOT NULL,
    executor TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    completed INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    model_seconds REAL NOT NULL,
    wall_seconds REAL NOT NULL
);
"""


F = TypeVar("F", bound=Callable[..., Any])


def _damaged(path: Path, exc: BaseException) -> DataError:
    return DataError(
        f"{path}: not a usable LLM cache, damaged ({type(exc).__name__}: {exc}); move the file "
        "aside and rerun (stored answers are then recomputed)"
    )


def guarded(method: F) -> F:
    """Turn SQLite corruption and undecodable stored JSON into one `DataError` naming the file.

    Works for plain methods and for generator methods (errors while iterating count too).
    """
    errors = (sqlite3.DatabaseError, json.JSONDecodeError, RecursionError)
    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def gen(self: LLMCache, *args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from method(self, *args, **kwargs)
            except errors as exc:
                raise _damaged(self.path, exc) from None

        return gen  # type: ignore[return-value]

    @functools.wraps(method)
    def wrapper(self: LLMCache, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except errors as exc:
            raise _damaged(self.path, exc) from None

    return wrapper  # type: ignore[return-value]


def default_cache_path() -> Path:
    """``$RECFUSE_CACHE/llm/cache.sqlite`` (default ``~/.cache/recfuse/llm/cache.sqlite``)."""
    return cache_root() / "llm" / "cache.sqlite"


def cache_key(
    backend: str, model_id: str, template: str, prompt: dict[str, Any], params: dict[str, Any]
) -> str:
    """SHA-256 (hex) of the canonical JSON of everything that determines an output."""
    payload = json.dumps(
        {
            "backend": backend,
            "model": model_id,
            "template": template,
            "prompt": prompt,
            "params": params,
        },
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class OutputRow:
    """One stored answer (or failure) for one cache key."""

    key: str
    backend: str
    model: str
    template: str
    prompt: dict[str, Any]
    params: dict[str, Any]
    status: str  # "ok" or "failed"
    raw_text: str | None
    parsed: Any
    reason: str | None
    attempts: int
    prompt_tokens: int
    completion_tokens: int
    seconds: float


@dataclass(frozen=True)
class JobStatus:
    """Progress and accounting of one job, from the cache alone."""

    job: str
    total: int
    ok: int
    failed: int
    prompt_tokens: int
    completion_tokens: int
    model_seconds: float
    failure_reasons: dict[str, int]

    @property
    def remaining(self) -> int:
        return self.total - self.ok - self.failed


class LLMCache:
    """SQLite store of LLM outputs (WAL mode; one writer, any number of readers)."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path is not None else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # isolation_level=None: we open transactions ourselves, one per write.
            self.conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL is durable against a killed process (the OS keeps the WAL); only a power
            # cut could lose the last commits, which a rerun then recomputes.
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise _damaged(self.path, exc) from None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> LLMCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ outputs

    @guarded
    def done_keys(self, keys: Sequence[str], include_failed: bool = True) -> set[str]:
        """The subset of ``keys`` already answered (failures count unless told otherwise)."""
        done: set[str] = set()
        status = "('ok', 'failed')" if include_failed else "('ok')"
        for start in range(0, len(keys), 500):
            chunk = list(keys[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT key FROM outputs WHERE status IN {status} AND key IN ({marks})", chunk
            )
            done.update(r[0] for r in rows)
        return done

    @guarded
    def get(self, key: str) -> OutputRow | None:
        row = self.conn.execute("SELECT * FROM outputs WHERE key = ?", (key,)).fetchone()
        return None if row is None else self._row(row)

    @guarded
    def put_many(self, rows: Iterable[OutputRow]) -> int:
        """Store rows in one transaction; an ``ok`` answer is never overwritten.

        A stored failure is replaced by a new row for the same key (a deliberate retry).
        Returns the number of rows written.
        """
        now = time.time()
        values = [
            (
                r.key,
                r.backend,
                r.model,
                r.template,
                json.dumps(r.prompt, ensure_ascii=False, sort_keys=True),
                json.dumps(r.params, sort_keys=True),
                r.status,
                r.raw_text,
                None if r.parsed is None else json.dumps(r.parsed, ensure_ascii=False),
                r.reason,
                r.attempts,
                r.prompt_tokens,
                r.completion_tokens,
                r.seconds,
                now,
            )
            for r in rows
        ]
        if not values:
            return 0
        with self._transaction():
            before = self.conn.total_changes
            self.conn.executemany(
                "INSERT INTO outputs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(key) DO UPDATE SET status=excluded.status, "
                "raw_text=excluded.raw_text, parsed=excluded.parsed, reason=excluded.reason, "
                "attempts=outputs.attempts + excluded.attempts, "
                "prompt_tokens=outputs.prompt_tokens + excluded.prompt_tokens, "
                "completion_tokens=outputs.completion_tokens + excluded.completion_tokens, "
                "seconds=outputs.seconds + excluded.seconds, created_at=excluded.created_at "
                "WHERE outputs.status = 'failed'",
                values,
            )
            return self.conn.total_changes - before

    @guarded
    def count(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM outputs").fetchone()[0])

    # ------------------------------------------------------------------ jobs

    @guarded
    def register_job(
        self, job: str, config: dict[str, Any], items: Sequence[tuple[str, str]]
    ) -> None:
        """Record a job's config and its prompt set ``[(prompt_id, key), ...]`` (replacing any
        earlier prompt set of that name)."""
        with self._transaction():
            self.conn.execute(
                "INSERT INTO jobs VALUES (?, ?, ?) ON CONFLICT(job) DO UPDATE SET "
                "config=excluded.config, updated_at=excluded.updated_at",
                (job, json.dumps(config, sort_keys=True, default=str), time.time()),
            )
            self.conn.execute("DELETE FROM job_items WHERE job = ?", (job,))
            self.conn.executemany(
                "INSERT INTO job_items VALUES (?, ?, ?, ?)",
                [(job, pid, key, pos) for pos, (pid, key) in enumerate(items)],
            )

    @guarded
    def record_run(self, job: str, executor: str, started_at: float, **numbers: float) -> None:
        """Append one run's accounting (completed, failed, tokens, seconds) to ``job_runs``."""
        with self._transaction():
            self.conn.execute(
                "INSERT INTO job_runs (job, executor, started_at, finished_at, completed, failed, "
                "prompt_tokens, completion_tokens, model_seconds, wall_seconds) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    job,
                    executor,
                    started_at,
                    time.time(),
                    int(numbers["completed"]),
                    int(numbers["failed"]),
                    int(numbers["prompt_tokens"]),
                    int(numbers["completion_tokens"]),
                    float(numbers["model_seconds"]),
                    float(numbers["wall_seconds"]),
                ),
            )

    @guarded
    def job_names(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT job FROM jobs ORDER BY job")]

    @guarded
    def job_runs(self, job: str) -> list[dict[str, Any]]:
        cur = self.conn.execute("SELECT * FROM job_runs WHERE job = ? ORDER BY id", (job,))
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    @guarded
    def status(self, job: str) -> JobStatus:
        """Counts and token/time totals over the job's current prompt set."""
        total = self.conn.execute(
            "SELECT COUNT(*) FROM job_items WHERE job = ?", (job,)
        ).fetchone()[0]
        if total == 0 and job not in self.job_names():
            raise DataError(
                f"{self.path}: no job named {job!r} (known: {', '.join(self.job_names()) or 'none'})"
            )
        row = self.conn.execute(
            "SELECT SUM(o.status = 'ok'), SUM(o.status = 'failed'), SUM(o.prompt_tokens), "
            "SUM(o.completion_tokens), SUM(o.seconds) "
            "FROM job_items j JOIN outputs o ON o.key = j.key WHERE j.job = ?",
            (job,),
        ).fetchone()
        reasons = self.conn.execute(
            "SELECT o.reason FROM job_items j JOIN outputs o ON o.key = j.key "
            "WHERE j.job = ? AND o.status = 'failed'",
            (job,),
        )
        counts: dict[str, int] = {}
        for (reason,) in reasons:
            kind = (reason or "unknown").split(":")[0]
            counts[kind] = counts.get(kind, 0) + 1
        ok, failed, ptok, ctok, secs = (v or 0 for v in row)
        return JobStatus(
            job, int(total), int(ok), int(failed), int(ptok), int(ctok), float(secs), counts
        )

    @guarded
    def job_outputs(self, job: str) -> Iterator[dict[str, Any]]:
        """The job's prompts in order, each with its output (or ``status: pending``)."""
        cur = self.conn.execute(
            "SELECT j.prompt_id, j.key, o.status, o.raw_text, o.parsed, o.reason, o.attempts, "
            "o.prompt_tokens, o.completion_tokens, o.seconds "
            "FROM job_items j LEFT JOIN outputs o ON o.key = j.key WHERE j.job = ? "
            "ORDER BY j.position",
            (job,),
        )
        for pid, key, status, raw, parsed, reason, attempts, ptok, ctok, secs in cur:
            yield {
                "id": pid,
                "key": key,
                "status": status or "pending",
                "raw_text": raw,
                "parsed": None if parsed is None else json.loads(parsed),
                "reason": reason,
                "attempts": attempts or 0,
                "prompt_tokens": ptok or 0,
                "completion_tokens": ctok or 0,
                "seconds": secs or 0.0,
            }

    # ------------------------------------------------------------------ internals

    def _transaction(self) -> _Transaction:
        return _Transaction(self.conn)

    @staticmethod
    def _row(row: tuple[Any, ...]) -> OutputRow:
        (
            key,
            backend,
            model,
            template,
            prompt,
            params,
            status,
            raw,
            parsed,
            reason,
            attempts,
            ptok,
            ctok,
            secs,
            _created,
        ) = row
        return OutputRow(
            key,
            backend,
            model,
            template,
            json.loads(prompt),
            json.loads(params),
            status,
            raw,
            None if parsed is None else json.loads(parsed),
            reason,
            attempts,
            ptok,
            ctok,
            secs,
        )


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on error): takes the write lock up front."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
