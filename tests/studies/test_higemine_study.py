"""The HiGeMine study on the skeleton: the tiny preset (200 Goodreads books, 2 seeds)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from recfuse.studies.cli import app


def test_tiny_preset_runs_resumes_and_does_not_claim_with_two_seeds(tmp_path: Path) -> None:
    args = ["higemine", "--preset", "tiny", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    (folder,) = tmp_path.glob("higemine-goodreads-books-*")
    payload = json.loads((folder / "results.json").read_text())
    assert len(payload["cells"]) == 2  # (goodreads-books, random) x seeds 0, 1
    statuses = {v["status"] for v in payload["verdicts"]}
    assert statuses == {"not tested: 2 seed(s)"}
    assert any(v["claim"].startswith("goodreads-books/random: higemine > flat_mlp")
               for v in payload["verdicts"])  # fmt: skip
    text = (folder / "results.md").read_text()
    assert "| goodreads-books | random | higemine | 2 |" in text
    assert (folder / "l2_micro_f1.png").stat().st_size > 1000
    stamp = {p.name: p.stat().st_mtime_ns for p in (folder / "cells").glob("*.json")}
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.output
    assert {p.name: p.stat().st_mtime_ns for p in (folder / "cells").glob("*.json")} == stamp
