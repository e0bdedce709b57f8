"""The worked example in docs/architecture.md runs as written and its verdict holds."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def test_the_documented_study_runs(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert code is not None
    body = code.group(1)
    assert len([line for line in body.splitlines() if line.strip()]) <= 30
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "example_study.py"
    script.write_text(body)
    runpy.run_path(str(script), run_name="docs_example")
    out = capsys.readouterr().out
    assert "**EASE > Pop**: holds" in out and "3 seed(s)" in out
    assert list((tmp_path / "runs").glob("ease-vs-pop-ml-100k-*/results.md"))
