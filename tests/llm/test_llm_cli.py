"""`recfuse llm` commands: YAML errors name the key; status and export read the cache."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml

from recfuse.errors import ConfigError
from recfuse.llm.cache import LLMCache, OutputRow
from recfuse.llm.job_config import load_job_config
from recfuse.llm.llamacpp_backend import import_llama_cpp

GOOD = {
    "name": "captions",
    "template": {"user": "Caption: {title}"},
    "source": {"kind": "inline", "records": [{"id": "a", "title": "Dune"}]},
}


def _cli(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    from recfuse.cli import main

    monkeypatch.setattr(sys, "argv", ["recfuse", *args])
    try:
        main()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def _write(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"params": {"max_tokens": 0}}, "params.max_tokens"),
        ({"backend": {"kindd": "http"}}, "backend.kindd"),
        ({"backend": {"kind": "gpt"}}, "backend.kind"),
        ({"name": "bad name!"}, "name"),
        ({"parse": {"kind": "json", "retries": 99}}, "parse.retries"),
    ],
)
def test_job_yaml_errors_name_the_key(tmp_path: Path, change: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"job.yaml: {key}"):
        load_job_config(_write(tmp_path, {**GOOD, **change}))


def test_job_yaml_syntax_and_cli_exit_code(tmp_path: Path, monkeypatch, capsys) -> None:
    bad = tmp_path / "job.yaml"
    bad.write_text("name: x\ntemplate: [unclosed\n")
    with pytest.raises(ConfigError, match=r"job.yaml:\d+:\d+: not valid YAML"):
        load_job_config(bad)
    assert _cli(monkeypatch, "llm", "run", str(_write(tmp_path, {**GOOD, "task": "score"}))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "options" in err[0]


def test_status_and_export(tmp_path: Path, monkeypatch, capsys) -> None:
    db = tmp_path / "c.sqlite"
    with LLMCache(db) as cache:
        cache.register_job("j", {}, [("a", "k1"), ("b", "k2"), ("c", "k3")])
        row = OutputRow(
            "k1",
            "transformers",
            "m",
            "v1:x",
            {"raw": "p"},
            {},
            "ok",
            " Dune ",
            "Dune",
            None,
            1,
            4,
            2,
            0.1,
        )
        cache.put_many(
            [
                row,
                OutputRow(
                    "k2",
                    "transformers",
                    "m",
                    "v1:x",
                    {"raw": "q"},
                    {},
                    "failed",
                    "??",
                    None,
                    "refusal: no",
                    2,
                    8,
                    4,
                    0.2,
                ),
            ]
        )
    assert _cli(monkeypatch, "llm", "status", "j", "--cache", str(db), "--json") == 0
    (status,) = json.loads(capsys.readouterr().out)
    assert (status["ok"], status["failed"], status["remaining"]) == (1, 1, 1)
    assert status["failure_reasons"] == {"refusal": 1}
    out = tmp_path / "out.jsonl"
    assert _cli(monkeypatch, "llm", "export", "j", "--out", str(out), "--cache", str(db)) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["status"]) for r in rows] == [
        ("a", "ok"),
        ("b", "failed"),
        ("c", "pending"),
    ]
    assert rows[0]["raw_text"] == " Dune " and rows[0]["parsed"] == "Dune"
    assert _cli(monkeypatch, "llm", "export", "nope", "--out", str(out), "--cache", str(db)) == 2


def test_llamacpp_missing_explains_the_build() -> None:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="CMAKE_ARGS=.*GGML_NATIVE=OFF"):
            import_llama_cpp()
    else:
        pytest.skip("llama-cpp-python is installed here")
