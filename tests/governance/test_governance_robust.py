"""Rewrites that delete checkpoints, paths SQLite would misread, read-only inspection, and rows
crafted to crash or exhaust the verifier (issue 14 items 1-3)."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recfuse.errors import DataError
from recfuse.governance.cli import app
from recfuse.governance.ledger import Ledger
from recfuse.governance.merkle import all_levels, leaf_hash
from recfuse.governance.verify import verify_ledger

runner = CliRunner()


def _make(path: Path, n: int = 6, every: int = 3) -> Path:
    with Ledger(path, checkpoint_every=every) as ledger:
        for i in range(n):
            ledger.append({"action": "publish", "decision": "deny" if i in (1, 4) else "allow"})
    return path


def _rewrite_consistently(path: Path, index: int, old: bytes, new: bytes) -> None:
    """Change one entry and recompute every node (what someone without the key can do)."""
    conn = sqlite3.connect(path)
    body = conn.execute("SELECT body FROM entries WHERE idx = ?", (index,)).fetchone()[0]
    conn.execute("UPDATE entries SET body = ? WHERE idx = ?", (body.replace(old, new), index))
    bodies = [r[0] for r in conn.execute("SELECT body FROM entries ORDER BY idx")]
    conn.execute("DELETE FROM nodes")
    for level, hashes in enumerate(all_levels([leaf_hash(b) for b in bodies])):
        conn.executemany(
            "INSERT INTO nodes VALUES (?, ?, ?)", [(level, i, h) for i, h in enumerate(hashes)]
        )
    conn.commit()
    conn.close()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("deleted", ["all", "newest"])
def test_rewrite_then_deleting_checkpoints_fails(tmp_path: Path, deleted: str) -> None:
    path = _make(tmp_path / "l.db")  # checkpoints at sizes 3 and 6
    # entry 4 is covered only by the newest checkpoint; entry 1 by both
    _rewrite_consistently(path, 1 if deleted == "all" else 4, b'"deny"', b'"allow"')
    where = "" if deleted == "all" else " WHERE seq = (SELECT MAX(seq) FROM checkpoints)"
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM checkpoints" + where)
    report = verify_ledger(path)
    assert not report.ok
    first = 0 if deleted == "all" else 3
    assert report.uncovered == (first, 5)
    assert any("not covered by any verified signed checkpoint" in f.detail for f in report.findings)
    result = runner.invoke(app, ["verify", str(path)])
    assert result.exit_code == 1 and f"entries {first}..5" in result.output


def test_rewrite_deleting_key_and_checkpoints_needs_a_witness(tmp_path: Path) -> None:
    path = _make(tmp_path / "l.db")
    witness = tmp_path / "witness.json"
    witness.write_text(runner.invoke(app, ["checkpoint", str(path)]).output)
    _rewrite_consistently(path, 1, b'"deny"', b'"allow"')
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM checkpoints")
        conn.execute("DELETE FROM meta WHERE key = 'public_key'")
    Path(f"{path}.key").unlink()
    # nothing in the file (or beside it) is left to betray the rewrite: the documented limit
    assert verify_ledger(path).ok and verify_ledger(path).uncovered == (0, 5)
    result = runner.invoke(app, ["verify", str(path), "--witness", str(witness)])
    assert result.exit_code == 1, result.output
    assert "differ from what the witness signed" in result.output


def test_paths_with_percent_and_hash_open_that_very_file(tmp_path: Path) -> None:
    good = _make(tmp_path / "a%41#1.db")
    other = _make(tmp_path / "aA")  # what 'file:a%41#1.db' would open (after %41 -> A, cut at #)
    with sqlite3.connect(other) as conn:
        conn.execute("UPDATE entries SET body = X'00' WHERE idx = 0")
    assert verify_ledger(good).ok
    assert not verify_ledger(other).ok
    result = runner.invoke(app, ["verify", str(good)])
    assert result.exit_code == 0 and "6 entries" in result.output


def test_inspection_commands_never_write(tmp_path: Path) -> None:
    path = _make(tmp_path / "l.db", n=5)
    with sqlite3.connect(path) as conn:  # damage that a writing open would "repair"
        conn.execute("DELETE FROM meta WHERE key = 'format'")
    before = _sha(path)
    assert not verify_ledger(path).ok
    for args in (["show", str(path)], ["prove", str(path), "1"], ["consistency", str(path), "0"]):
        result = runner.invoke(app, args)
        assert isinstance(result.exception, DataError), (args, result.output)
    assert _sha(path) == before
    assert any(f.row == "format" for f in verify_ledger(path).findings)  # the finding survives
    fresh = _make(tmp_path / "fresh.db", n=4, every=2)
    before = _sha(fresh)
    for args in (["show", str(fresh)], ["prove", str(fresh), "1"], ["verify", str(fresh)]):
        assert runner.invoke(app, args).exit_code == 0, args
    assert _sha(fresh) == before
    with pytest.raises(Exception, match="read-only"), Ledger(fresh, read_only=True) as ledger:
        ledger.append({"x": 1})


def _crafted(tmp_path: Path, sql: str, params: tuple = ()) -> Path:
    path = _make(tmp_path / "l.db")
    with sqlite3.connect(path) as conn:
        conn.execute(sql, params)
    return path


@pytest.mark.parametrize(
    ("sql", "params", "table"),
    [
        ("INSERT INTO entries VALUES (1000000000000, ?)", (b"{}",), "entries"),
        ("INSERT INTO entries VALUES (-5, ?)", (b"{}",), "entries"),
        (
            "UPDATE entries SET body = ? WHERE idx = 2",
            (b"[" * 100_000 + b"]" * 100_000,),
            "entries",
        ),
        ("UPDATE entries SET body = ? WHERE idx = 2", ("text, not bytes",), "entries"),
        ("UPDATE entries SET body = ? WHERE idx = 2", (b"\xff\xfe",), "entries"),
        ("UPDATE entries SET body = ? WHERE idx = 2", (12345,), "entries"),
        ("INSERT INTO nodes VALUES (0, 1000000000000, ?)", (b"\x00" * 32,), "nodes"),
        ("INSERT INTO nodes VALUES (1000000, 1, ?)", (b"\x00" * 32,), "nodes"),
        ("UPDATE nodes SET level = 'x' WHERE level = 1 AND idx = 0", (), "nodes"),
        ("UPDATE nodes SET hash = 7 WHERE level = 0 AND idx = 3", (), "entries"),
        ("UPDATE checkpoints SET root = 1000000000000 WHERE seq = 0", (), "checkpoints"),
        ("UPDATE checkpoints SET signature = 'sig' WHERE seq = 0", (), "checkpoints"),
        ("UPDATE checkpoints SET tree_size = 1e300 WHERE seq = 1", (), "checkpoints"),
        ("UPDATE checkpoints SET time = 5 WHERE seq = 1", (), "checkpoints"),
        ("UPDATE meta SET value = 42 WHERE key = 'log_id'", (), "meta"),
        ("UPDATE meta SET value = 'zz' WHERE key = 'public_key'", (), "meta"),
        ("INSERT INTO meta VALUES ('extra', 'x')", (), "meta"),
        ("INSERT INTO blobs VALUES ('sha256:00', 5)", (), "blobs"),
        ("DROP TABLE blobs", (), "schema"),
        ("CREATE TRIGGER t AFTER INSERT ON entries BEGIN SELECT 1; END", (), "schema"),
    ],
)
def test_crafted_rows_are_located_findings(
    tmp_path: Path, sql: str, params: tuple, table: str
) -> None:
    path = _crafted(tmp_path, sql, params)
    report = verify_ledger(path)
    assert not report.ok
    tables = {f.table for f in report.findings}
    assert table in tables, report.findings
    result = runner.invoke(app, ["verify", str(path), "--json"])
    assert result.exit_code == 1 and result.exception is not None
    assert json.loads(result.output)["ok"] is False


def test_large_gap_is_counted_not_enumerated(tmp_path: Path) -> None:
    path = _make(tmp_path / "l.db", n=8, every=8)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM entries WHERE idx BETWEEN 2 AND 6")
    report = verify_ledger(path)
    gaps = [f for f in report.findings if f.table == "entries" and f.row == "2..6"]
    assert gaps and "5 rows" in gaps[0].detail and report.first_bad_entry == 2


def test_not_a_database_and_corrupted_pages_are_findings(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    report = verify_ledger(junk)
    assert not report.ok and report.findings[0].table == "sqlite"
    path = _make(tmp_path / "l.db", n=300, every=100)
    raw = bytearray(path.read_bytes())
    raw[4096 + 5 : 4096 + 9] = b"\xff\xff\xff\xff"  # a b-tree page header: cell-content offset
    broken = tmp_path / "broken.db"
    broken.write_bytes(bytes(raw))
    report = verify_ledger(broken)
    assert not report.ok and any(f.table == "sqlite" for f in report.findings), report.findings


def test_schema_bytes_that_are_not_utf8_are_a_finding(tmp_path: Path) -> None:
    """SQLite's error message then quotes the bad byte, which Python cannot decode: this used
    to escape as a UnicodeDecodeError traceback (found by the bit-flip fuzzer)."""
    path = _make(tmp_path / "l.db")
    raw = path.read_bytes()
    at = raw.index(b"CREATE TABLE checkpoints") + len(b"CREATE TABL")
    broken = tmp_path / "broken.db"
    broken.write_bytes(raw[:at] + b"\xc5" + raw[at + 1 :])
    report = verify_ledger(broken)
    assert not report.ok and report.findings[0].table == "sqlite", report.findings
    result = runner.invoke(app, ["show", str(broken)])
    assert isinstance(result.exception, DataError)
