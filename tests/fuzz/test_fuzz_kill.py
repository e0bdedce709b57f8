"""kill -9 in the middle of ledger appends: the file always verifies and keeps every entry whose
append had returned (the writer prints an index only after its commit)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from fuzz_support import examples, record

from recfuse.governance.ledger import Ledger
from recfuse.governance.verify import verify_ledger

WRITER = """
import sys
from recfuse.governance.ledger import Ledger
with Ledger(sys.argv[1], checkpoint_every=7) as ledger:
    while True:
        print(ledger.append({"action": "write", "decision": "allow"}), flush=True)
"""


def test_kill_9_during_appends(tmp_path: Path) -> None:
    rng = random.Random(0)
    tally: Counter[str] = Counter()
    path = tmp_path / "l.db"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for _ in range(examples(2, 10)):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, env=env
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the writer is up and has committed one entry
        assert first.strip().isdigit(), first
        time.sleep(rng.uniform(0.05, 0.5))
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=60)
        acknowledged = int(([first] + rest.split())[-1]) + 1
        report = verify_ledger(path, require_coverage=False)
        assert report.ok, report.findings
        assert report.size >= acknowledged, (report.size, acknowledged)  # nothing committed lost
        tally["kills"] += 1
        tally["verified OK after the kill"] += 1
    with Ledger(path) as ledger:  # the log takes appends again after the last kill
        ledger.append({"action": "after"})
        ledger.checkpoint()
    assert verify_ledger(path).ok
    tally["entries at the end"] = verify_ledger(path).size
    tally["acknowledged entries lost"] = 0  # asserted above, kill by kill
    record("kill -9 during ledger appends", tally)
