"""Random bit flips in a real ledger file: each one changes nothing logical, or `verify_ledger`
reports it as a located finding. Never a traceback, never "OK" for a changed log."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from fuzz_support import examples, record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recfuse.governance.digest import canonical_json, digest
from recfuse.governance.ledger import Ledger, open_read_only
from recfuse.governance.verify import verify_ledger

Dump = list[tuple[str, list[tuple[object, ...]]]]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """24 entries (a ragged tree), checkpoints at 8, 16 and 24, one blob: the file's bytes."""
    path = tmp_path_factory.mktemp("ledger") / "l.db"
    content = canonical_json({"prompt": "rank these items"})
    with Ledger(path, checkpoint_every=8) as ledger:
        for i in range(24):
            blobs = {digest({"prompt": "rank these items"}): content} if i == 5 else None
            decision = "deny" if i % 5 == 0 else "allow"
            ledger.append({"action": f"act{i}", "decision": decision}, blobs)
    with sqlite3.connect(path) as conn:  # one self-contained file: no WAL beside it
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert verify_ledger(path).ok
    return path.read_bytes()


def logical_dump(path: Path) -> Dump | None:
    """Every row of every table (values with their types) and the schema; None if unreadable."""
    try:
        conn = open_read_only(path)
        conn.text_factory = bytes  # compare the stored bytes themselves
        try:
            schema = conn.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name"
            ).fetchall()
            out: Dump = [("sqlite_master", schema)]
            for kind, name, _, _ in schema:
                if kind == b"table":
                    rows = conn.execute(f'SELECT * FROM "{name.decode()}"').fetchall()
                    out.append((name.decode(), sorted(rows, key=repr)))
            return out
        finally:
            conn.close()
    except (sqlite3.DatabaseError, UnicodeDecodeError):
        return None


def _clean(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def flip_outcome(pristine: bytes, bit: int, path: Path, reference: Dump) -> str:
    """Flip one bit, verify; the outcome's name, or an AssertionError for a silent change."""
    raw = bytearray(pristine)
    raw[bit // 8] ^= 1 << (bit % 8)
    _clean(path)
    path.write_bytes(bytes(raw))
    try:
        dump = logical_dump(path)
        changed = dump != reference
        report = verify_ledger(path)  # any exception here fails the test: it is a crash
    finally:
        _clean(path)
    if report.ok:
        assert not changed, f"bit {bit}: the log changed and verify said OK"
        return "unchanged, verify OK"
    assert all(f.table and f.row and f.detail for f in report.findings)
    if not changed:
        return "unchanged, reported (physical damage)"
    if any(f.table == "sqlite" for f in report.findings):
        return "changed, reported by SQLite's own checks"
    return "changed, reported as a located finding"


def test_random_bit_flips(pristine: bytes, tmp_path: Path) -> None:
    reference_path = tmp_path / "ref.db"
    reference_path.write_bytes(pristine)
    reference = logical_dump(reference_path)
    assert reference is not None
    tally: Counter[str] = Counter()
    path = tmp_path / "flipped.db"

    @settings(
        max_examples=examples(60, 20_000),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.integers(0, 8 * len(pristine) - 1))
    def one(bit: int) -> None:
        tally[flip_outcome(pristine, bit, path, reference)] += 1

    one()
    tally["flips"] = sum(tally.values())
    tally["file bytes"] = len(pristine)
    record("ledger bit flips", tally)
    assert tally["flips"] >= examples(60, 20_000) // 2
