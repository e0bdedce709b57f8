"""`recfuse audit leakage` end to end on a small real subset, and its one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from recfuse.audit.cli import app

ROOT = Path(__file__).resolve().parents[2]


def test_audit_leakage_on_chembl_subset(tmp_path: Path) -> None:
    out = tmp_path / "audit"
    result = CliRunner().invoke(
        app,
        [
            "leakage",
            "--dataset",
            "chembl-assays",
            "--group",
            "assay_chembl_id",
            "--target",
            "pchembl_value",
            "--context",
            "target",
            "--seeds",
            "1",
            "--max-groups",
            "25",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["task"] == "regression" and report["features"] == "morgan"
    assert set(report["records"][0]["splits"]) == {"random", "group_disjoint", "scaffold"}
    judged = report["verdict"]
    # the recommendation follows from the measured evidence (it is not a constant)
    leaky = judged["evidence"] >= 0.2 or judged["relative_split_gap"] >= 0.1
    assert judged["recommended_split"] == ("group_disjoint" if leaky else "random")
    assert judged["control_passed"] is True  # shuffled labels fall to chance
    assert any("subsampled 25" in n for n in report["notes"])
    for name in ("config.json", "versions.json", "report.md", "seeds/seed_0.json"):
        assert (out / name).is_file()
    assert "## Verdict" in result.output


def test_bad_column_is_one_line_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RECFUSE_CACHE": str(tmp_path)}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from recfuse.cli import main; main()",
            "audit",
            "leakage",
            "--dataset",
            "goodreads-books",
            "--group",
            "publisher",
            "--target",
            "genre",
            "--out",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--group: 'publisher' is not a column of goodreads-books" in lines[0]
