"""Tampering with any stored row is detected and located by `verify_ledger`."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from recfuse.governance.digest import canonical_json, digest
from recfuse.governance.ledger import Ledger
from recfuse.governance.merkle import all_levels, leaf_hash
from recfuse.governance.verify import VerifyReport, verify_ledger

KEYS = {"entries": ("idx",), "nodes": ("level", "idx"), "checkpoints": ("seq",),
        "blobs": ("digest",), "meta": ("key",)}  # fmt: skip


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """7 entries (a ragged tree), checkpoints at sizes 4 and 7, one blob."""
    path = tmp_path_factory.mktemp("ledger") / "l.db"
    content = canonical_json({"prompt": "rank these items"})
    with Ledger(path, checkpoint_every=4) as ledger:
        for i in range(7):
            blobs = {digest({"prompt": "rank these items"}): content} if i == 2 else None
            ledger.append({"action": f"act{i}"}, blobs)
        ledger.checkpoint()
        assert len(ledger.checkpoints()) == 2
    assert verify_ledger(path).ok
    return path


@pytest.fixture
def ledger_copy(pristine: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy.db"
    conn = sqlite3.connect(pristine)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    shutil.copy(pristine, target)
    return target


def _rows(conn: sqlite3.Connection, table: str) -> list[dict]:
    cur = conn.execute(f"SELECT * FROM {table}")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _flips(value: object) -> list[object]:
    """Every one-byte change of a stored value (XOR 0x01 on each byte)."""
    if isinstance(value, bytes):
        return [value[:i] + bytes([value[i] ^ 1]) + value[i + 1 :] for i in range(len(value))]
    if isinstance(value, str):
        raw = value.encode()
        return [(raw[:i] + bytes([raw[i] ^ 1]) + raw[i + 1 :]).decode() for i in range(len(raw))]
    if isinstance(value, int):
        return [value ^ (1 << (8 * b)) for b in range(max(1, (value.bit_length() + 7) // 8) + 1)]
    raise TypeError(type(value))


def _located(report: VerifyReport, table: str, row: dict, column: str, new: object) -> bool:
    if table == "entries":
        return report.first_bad_entry == row["idx"]
    if table == "nodes":
        level, idx = row["level"], row["idx"]
        if level == 0:
            return report.first_bad_entry == idx
        names = {
            f"({level}, {idx})",
            f"({new}, {idx})" if column == "level" else f"({level}, {new})",
        }
        return any(f.table == "nodes" and f.row in names for f in report.findings)
    if table == "checkpoints":
        seq = new if column == "seq" else row["seq"]
        return any(f.table == "checkpoints" and f.row == f"seq {seq}" for f in report.findings)
    if table == "blobs":
        name = (new if column == "digest" else row["digest"])[:23]
        return any(f.table == "blobs" and f.row == name for f in report.findings)
    return any(f.table == "meta" for f in report.findings)


def test_every_byte_of_every_row(ledger_copy: Path) -> None:
    conn = sqlite3.connect(ledger_copy, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # thousands of commits; durability is not under test
    tried = skipped = 0
    for table, keys in KEYS.items():
        for row in _rows(conn, table):
            where = " AND ".join(f"{k} = ?" for k in keys)
            key_values = [row[k] for k in keys]
            for column, value in row.items():
                for new in _flips(value):
                    try:
                        conn.execute(
                            f"UPDATE {table} SET {column} = ? WHERE {where}", [new, *key_values]
                        )
                    except sqlite3.IntegrityError:
                        skipped += (
                            1  # the flip would duplicate a key: not a state the file can hold
                        )
                        continue
                    new_keys = [new if k == column else row[k] for k in keys]
                    report = verify_ledger(ledger_copy)
                    conn.execute(
                        f"UPDATE {table} SET {column} = ? WHERE {where}", [value, *new_keys]
                    )
                    assert not report.ok, (table, row, column, new)
                    assert _located(report, table, row, column, new), (
                        table,
                        column,
                        new,
                        report.findings,
                    )
                    tried += 1
    assert verify_ledger(ledger_copy).ok
    assert tried > 1000 and skipped < tried / 20


@pytest.mark.parametrize("index", range(7))
def test_deleted_entry_is_named(ledger_copy: Path, index: int) -> None:
    with sqlite3.connect(ledger_copy) as conn:
        conn.execute("DELETE FROM entries WHERE idx = ?", (index,))
    report = verify_ledger(ledger_copy)
    assert not report.ok and report.first_bad_entry == index, report.findings


def test_deleted_node_and_middle_checkpoint_are_named(ledger_copy: Path) -> None:
    conn = sqlite3.connect(ledger_copy, isolation_level=None)
    for level, idx in conn.execute("SELECT level, idx FROM nodes").fetchall():
        saved = conn.execute(
            "SELECT hash FROM nodes WHERE level=? AND idx=?", (level, idx)
        ).fetchone()
        conn.execute("DELETE FROM nodes WHERE level=? AND idx=?", (level, idx))
        report = verify_ledger(ledger_copy)
        conn.execute("INSERT INTO nodes VALUES (?, ?, ?)", (level, idx, saved[0]))
        assert not report.ok
        if level == 0:
            assert report.first_bad_entry == idx
        else:
            assert any(f.table == "nodes" and f.row == f"({level}, {idx})" for f in report.findings)
    conn.execute("DELETE FROM checkpoints WHERE seq = 0")  # not the newest: a gap
    report = verify_ledger(ledger_copy)
    assert any(f.table == "checkpoints" and "sequence" in f.detail for f in report.findings)


def test_reordered_rows_are_named(ledger_copy: Path) -> None:
    conn = sqlite3.connect(ledger_copy, isolation_level=None)
    bodies = dict(conn.execute("SELECT idx, body FROM entries").fetchall())
    for i in range(7):
        for j in range(i + 1, 7):
            conn.execute("UPDATE entries SET body = ? WHERE idx = ?", (bodies[j], i))
            conn.execute("UPDATE entries SET body = ? WHERE idx = ?", (bodies[i], j))
            report = verify_ledger(ledger_copy)
            conn.execute("UPDATE entries SET body = ? WHERE idx = ?", (bodies[i], i))
            conn.execute("UPDATE entries SET body = ? WHERE idx = ?", (bodies[j], j))
            assert report.first_bad_entry == i, (i, j, report.findings)
    # reverse the whole log
    for k in range(7):
        conn.execute("UPDATE entries SET body = ? WHERE idx = ?", (bodies[6 - k], k))
    assert verify_ledger(ledger_copy).first_bad_entry == 0


def test_swapped_or_foreign_checkpoints_are_named(ledger_copy: Path, tmp_path: Path) -> None:
    conn = sqlite3.connect(ledger_copy, isolation_level=None)
    cols = "tree_size, root, time, key_id, signature"
    rows = {r[0]: r[1:] for r in conn.execute(f"SELECT seq, {cols} FROM checkpoints")}
    setter = f"UPDATE checkpoints SET ({cols}) = (?, ?, ?, ?, ?) WHERE seq = ?"
    conn.execute(setter, (*rows[1], 0))
    conn.execute(setter, (*rows[0], 1))
    report = verify_ledger(ledger_copy)
    named = {f.row for f in report.findings if f.table == "checkpoints"}
    assert {"seq 0", "seq 1"} <= named, report.findings
    conn.execute(setter, (*rows[0], 0))
    conn.execute(setter, (*rows[1], 1))
    assert verify_ledger(ledger_copy).ok
    # a checkpoint from another log (its own key) dropped in at seq 1
    with Ledger(tmp_path / "other.db") as other:
        other.append_many([{"n": i} for i in range(6)])
        cp = other.checkpoint()
    conn.execute(setter, (cp.tree_size, cp.root, cp.time, cp.key_id, cp.signature, 1))
    report = verify_ledger(ledger_copy)
    assert any(f.table == "checkpoints" and f.row == "seq 1" for f in report.findings)


def test_consistent_rewrite_is_caught_by_the_signed_checkpoints(ledger_copy: Path) -> None:
    """An attacker without the key rewrites entry 4 *and* recomputes every node: the stored tree is
    self-consistent, but the checkpoints signed before the rewrite expose it (entries 4..6)."""
    conn = sqlite3.connect(ledger_copy, isolation_level=None)
    bodies = [b for (b,) in conn.execute("SELECT body FROM entries ORDER BY idx")]
    bodies[4] = bodies[4].replace(b'"act4"', b'"act9"')
    conn.execute("UPDATE entries SET body = ? WHERE idx = 4", (bodies[4],))
    levels = all_levels([leaf_hash(b) for b in bodies])
    for level, hashes in enumerate(levels):
        for idx, h in enumerate(hashes):
            conn.execute("UPDATE nodes SET hash = ? WHERE level = ? AND idx = ?", (h, level, idx))
    report = verify_ledger(ledger_copy)
    assert not report.ok
    details = [f.detail for f in report.findings if f.table == "checkpoints"]
    assert any("4..6" in d for d in details), report.findings


def test_pinned_key_rejects_a_resigned_log(ledger_copy: Path, tmp_path: Path) -> None:
    """Someone with file access re-signs everything with a fresh key: a verifier who pinned the
    original public key still refuses it."""
    from recfuse.governance.signing import load_or_create_key, public_key_bytes

    original = Ledger(ledger_copy).public_key()
    assert original is not None
    attacker = load_or_create_key(tmp_path / "attacker.key")
    with sqlite3.connect(ledger_copy) as conn:
        conn.execute("DELETE FROM checkpoints")
        conn.execute(
            "UPDATE meta SET value = ? WHERE key = 'public_key'",
            (public_key_bytes(attacker).hex(),),
        )
    with Ledger(ledger_copy, key_path=tmp_path / "attacker.key") as forged:
        forged.checkpoint()
    assert verify_ledger(ledger_copy).ok  # self-consistent with the forged key...
    assert not verify_ledger(ledger_copy, public_key=original).ok  # ...but not with the real one
