"""The leakage study on the skeleton: the tiny preset (25 ChEMBL assays, 2 seeds)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from recfuse.studies.cli import app


def test_tiny_preset_writes_reports_and_says_not_tested(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["leakage", "--preset", "tiny", "--set", f"output={tmp_path}"])
    assert result.exit_code == 0, result.output
    (folder,) = tmp_path.glob("leakage-chembl-*")
    payload = json.loads((folder / "results.json").read_text())
    assert sorted(c["seed"] for c in payload["cells"]) == [0, 1]
    (v,) = payload["verdicts"]
    assert v["status"] == "not tested: 2 seed(s)"
    assert "chembl: the group is identifiable" in v["claim"]
    report = json.loads((folder / "chembl" / "report.json").read_text())
    assert [r["seed"] for r in report["records"]] == [0, 1]
    assert report["verdict"]["control_passed"] is True
    assert (folder / "chembl" / "splits" / "seed_1.npz").is_file()
    assert "| chembl | " in (folder / "results.md").read_text()
    assert (folder / "leakage.png").stat().st_size > 1000


def test_unknown_case_is_one_line_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["leakage", "--cases", "chembl,nope", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "datasets" in str(result.exception)
    assert not list(tmp_path.iterdir())
