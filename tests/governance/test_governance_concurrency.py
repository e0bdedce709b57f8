"""Many writer processes at once: no entry lost, none duplicated, the tree still verifies."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

from recfuse.governance.ledger import Ledger
from recfuse.governance.signing import load_or_create_key, public_key_bytes
from recfuse.governance.verify import verify_ledger

WRITERS = 4
PER_WRITER = 1000


def _writer(path: str, writer: int, start_at: float) -> None:
    while time.time() < start_at:  # all four start together, to collide as much as possible
        time.sleep(0.001)
    with Ledger(path, checkpoint_every=250, durable=False) as ledger:
        for seq in range(PER_WRITER):
            ledger.append({"writer": writer, "seq": seq})


def test_four_processes_lose_nothing(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    ctx = mp.get_context("fork")
    start_at = time.time() + 0.5
    procs = [ctx.Process(target=_writer, args=(path, w, start_at)) for w in range(WRITERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    with Ledger(path) as ledger:
        assert ledger.size() == WRITERS * PER_WRITER
        seen = [(e["writer"], e["seq"]) for e in ledger.entries()]
        assert [e for e in range(ledger.size())] == [e["index"] for e in ledger.entries()]
        checkpoints = ledger.checkpoints()
    assert sorted(seen) == [(w, s) for w in range(WRITERS) for s in range(PER_WRITER)]
    # each writer's own entries stay in its order
    for w in range(WRITERS):
        assert [s for ww, s in seen if ww == w] == list(range(PER_WRITER))
    interleaved = sum(1 for a, b in zip(seen, seen[1:], strict=False) if a[0] != b[0])
    assert interleaved > WRITERS  # the writers really ran at the same time
    assert [cp.tree_size for cp in checkpoints] == [250 * k for k in range(1, 17)]
    report = verify_ledger(path)
    assert report.ok, report.findings[:5]


def _make_key(path: str, start_at: float, queue: mp.Queue) -> None:
    while time.time() < start_at:
        time.sleep(0.0005)
    queue.put(public_key_bytes(load_or_create_key(path)).hex())


def test_key_created_once_under_a_race(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "ledger.key"
    ctx = mp.get_context("fork")
    queue: mp.Queue = ctx.Queue()
    start_at = time.time() + 0.3
    procs = [ctx.Process(target=_make_key, args=(str(path), start_at, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    keys = {queue.get(timeout=60) for _ in procs}
    for p in procs:
        p.join(timeout=60)
    assert len(keys) == 1
    assert path.stat().st_mode & 0o777 == 0o600
    assert not list(path.parent.glob("*.tmp"))
