"""`recfuse ledger verify|prove|check-proof|checkpoint|show` on a real ledger file."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recfuse.errors import DataError
from recfuse.governance.cli import app
from recfuse.governance.governor import Governor, PolicyDenied
from recfuse.governance.ledger import Ledger
from recfuse.governance.policy import Policies, Resource

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.db"
    with Ledger(path, checkpoint_every=5) as ledger:
        gov = Governor(
            ledger, Policies({"p.cedar": 'permit (principal, action == Action::"ok", resource);'})
        )
        for i in range(12):
            with contextlib.suppress(PolicyDenied):
                gov.run("ok" if i % 3 else "nope", Resource("Item", str(i)), abs, i)
    return path


def test_verify_ok_then_tampered(db: Path) -> None:
    # entries 10..12 came after the last signed checkpoint (size 10): not yet covered
    result = runner.invoke(app, ["verify", str(db)])
    assert result.exit_code == 1 and "entries 10..12 are not covered" in result.output
    result = runner.invoke(app, ["verify", str(db), "--allow-uncovered"])
    assert result.exit_code == 0 and "entries 10..12 NOT covered" in result.output
    assert runner.invoke(app, ["checkpoint", str(db)]).exit_code == 0
    result = runner.invoke(app, ["verify", str(db)])
    assert (
        result.exit_code == 0 and result.output.startswith("OK") and "13 entries" in result.output
    )
    with sqlite3.connect(db) as conn:
        conn.execute(
            "UPDATE entries SET body = replace(body, '\"nope\"', '\"okay\"') WHERE idx = 4"
        )
    result = runner.invoke(app, ["verify", str(db)])
    assert result.exit_code == 1
    assert "first bad entry: 4" in result.output
    js = runner.invoke(app, ["verify", str(db), "--json"])
    assert json.loads(js.output)["first_bad_entry"] == 4


def test_prove_and_check(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "proof.json"
    result = runner.invoke(app, ["prove", str(db), "7", "--out", str(out)])
    assert result.exit_code == 0, result.output
    bundle = json.loads(out.read_text())
    assert bundle["leaf_index"] == 7 and bundle["tree_size"] == 10  # the checkpoint at size 10
    assert runner.invoke(app, ["check-proof", str(out)]).exit_code == 0
    # an entry newer than every checkpoint: an error by default (prove does not write)...
    result = runner.invoke(app, ["prove", str(db), "12"])
    assert isinstance(result.exception, DataError) and "--sign" in str(result.exception)
    # ...and a fresh checkpoint when asked to sign one
    fresh = json.loads(runner.invoke(app, ["prove", str(db), "12", "--sign"]).output)
    assert fresh["tree_size"] == 13
    # any change to the proved entry breaks the proof
    forged = dict(bundle, entry_base64=json.loads(json.dumps(bundle))["entry_base64"][:-4] + "AAA=")
    out.write_text(json.dumps(forged))
    result = runner.invoke(app, ["check-proof", str(out)])
    assert result.exit_code == 1 and "FAILED" in result.output
    wrong_key = "00" * 32
    out.write_text(json.dumps(bundle))
    assert runner.invoke(app, ["check-proof", str(out), "--public-key", wrong_key]).exit_code == 1


def test_witness_checkpoint_catches_truncation(db: Path, tmp_path: Path) -> None:
    witness = tmp_path / "witness.json"
    result = runner.invoke(app, ["checkpoint", str(db)])
    witness.write_text(result.output)
    assert runner.invoke(app, ["verify", str(db), "--witness", str(witness)]).exit_code == 0
    with sqlite3.connect(db) as conn:  # cut the tail off consistently: entries, nodes, checkpoints
        conn.execute("DELETE FROM entries WHERE idx >= 10")
        conn.execute("DELETE FROM nodes WHERE (idx + 1) * (1 << level) > 10")
        conn.execute("DELETE FROM checkpoints WHERE tree_size > 10")
    result = runner.invoke(app, ["verify", str(db)])
    assert result.exit_code == 0  # nothing inside the file betrays a clean truncation...
    result = runner.invoke(app, ["verify", str(db), "--witness", str(witness)])
    assert (
        result.exit_code == 1 and "witness saw 13 entries" in result.output
    )  # ...the witness does


def test_show_and_errors(db: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["show", str(db), "--decision", "deny"])
    assert result.exit_code == 0 and result.output.count("nope") == 4
    result = runner.invoke(app, ["verify", str(tmp_path / "missing.db")])
    assert isinstance(result.exception, DataError)
    result = runner.invoke(app, ["prove", str(db), "99"])
    assert isinstance(result.exception, DataError)
