"""A job killed with SIGKILL mid-run resumes and completes exactly the remaining prompts."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from recfuse.llm import LLMCache, LLMJob
from recfuse.llm.job_config import load_job_config

pytestmark = pytest.mark.slow

N_PROMPTS = 10
KILL_AFTER = 5  # rows stored before the kill; the rerun must compute the other N - k
TITLES = [
    "Dune",
    "Emma",
    "Ulysses",
    "Beloved",
    "Middlemarch",
    "Dracula",
    "Walden",
    "Hamlet",
    "Rebecca",
    "Solaris",
]


class CountingLLM:
    """Delegates to a real backend and counts every prompt it is asked to generate."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.backend = inner.backend
        self.model_id = inner.model_id
        self.batch_size = 1
        self.prompts: list[Any] = []

    def generate(self, prompts: Sequence[Any], params: Any = None) -> Any:
        self.prompts.extend(prompts)
        return self.inner.generate(prompts, params)


def _rows(db: Path) -> dict[str, tuple[str, float]]:
    if not db.exists():
        return {}
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return {
            k: (t, c) for k, t, c in conn.execute("SELECT key, raw_text, created_at FROM outputs")
        }
    except sqlite3.OperationalError:  # tables not created yet
        return {}
    finally:
        conn.close()


def test_sigkill_mid_run_then_rerun_finishes_exactly_the_rest(smollm2, tmp_path: Path) -> None:
    _kill_then_resume(tmp_path, "transformers", smollm2)


def test_sigkill_resume_with_the_ctranslate2_backend(ct2_int8, tmp_path: Path) -> None:
    _kill_then_resume(tmp_path, "ctranslate2", ct2_int8)


def _kill_then_resume(tmp_path: Path, kind: str, llm: Any) -> None:
    """Run the job as a subprocess, SIGKILL it after `KILL_AFTER` rows, rerun it in-process."""
    assert len(TITLES) == N_PROMPTS
    db = tmp_path / "cache.sqlite"
    job_file = tmp_path / "job.yaml"
    job_file.write_text(
        yaml.safe_dump(
            {
                "name": "resume-test",
                "backend": {
                    "kind": kind,
                    "model": "smollm2",
                    "batch_size": 1,
                    "threads": 1,
                },
                "template": {"user": "In one short sentence, what is this book about?\n{title}"},
                "source": {
                    "kind": "inline",
                    "records": [{"id": str(i), "title": t} for i, t in enumerate(TITLES)],
                },
                "params": {"max_tokens": 6},
                "parse": {"kind": "text", "retries": 0},
                "cache": str(db),
            }
        )
    )
    cmd = [
        sys.executable,
        "-c",
        # The llm command group alone: same `run` code, without importing every part's CLI.
        "from recfuse.llm.cli import app; app()",
        "run",
        str(job_file),
        "--no-progress",
        "--runs-dir",
        str(tmp_path / "runs"),
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ)
    )
    deadline = time.monotonic() + 120
    while len(_rows(db)) < KILL_AFTER:
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        assert time.monotonic() < deadline, "the job produced no rows in time"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    before = _rows(db)
    assert KILL_AFTER <= len(before) < N_PROMPTS, len(before)

    counting = CountingLLM(llm)
    job = LLMJob.from_config(load_job_config(job_file), backend=counting, progress=False)
    report = job.run()
    # Exactly the prompts without a stored answer were computed, each once.
    assert len(counting.prompts) == N_PROMPTS - len(before)
    assert report.already_done == len(before)
    assert report.completed + report.failed == N_PROMPTS - len(before)
    after = _rows(db)
    assert len(after) == N_PROMPTS
    assert all(after[k] == v for k, v in before.items())  # nothing recomputed or rewritten
    done_before = {repr(p) for p in counting.prompts}
    assert len(done_before) == len(counting.prompts)  # no prompt asked twice
    with LLMCache(db) as cache:
        status = cache.status("resume-test")
        assert (status.total, status.remaining) == (N_PROMPTS, 0)
        assert [r["id"] for r in cache.job_outputs("resume-test")] == [
            str(i) for i in range(N_PROMPTS)
        ]
        assert cache.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # A third run has nothing left to do.
    assert (
        LLMJob.from_config(load_job_config(job_file), backend=counting, progress=False)
        .run()
        .completed
        == 0
    )
    assert len(counting.prompts) == N_PROMPTS - len(before)
