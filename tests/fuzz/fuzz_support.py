"""Fuzz suite support: a bounded run inside `make test`, a long one under `make fuzz`.

`RECFUSE_FUZZ=1` selects the long profile (20,000 ledger bit flips); `RECFUSE_FUZZ_REPORT` names
a JSON file that collects each fuzzer's outcome counts (docs/reliability.md quotes them).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

LONG = os.environ.get("RECFUSE_FUZZ") == "1"


def examples(short: int, long: int) -> int:
    """How many examples a fuzzer runs under the current profile."""
    return long if LONG else short


def record(area: str, tally: Counter[str]) -> None:
    """Merge one fuzzer's counts into the report file, if one is named."""
    target = os.environ.get("RECFUSE_FUZZ_REPORT")
    if not target:
        return
    path = Path(target)
    report = json.loads(path.read_text()) if path.is_file() else {}
    report[area] = dict(sorted(tally.items()))
    from recfuse.atomic import write_json

    write_json(path, report)
