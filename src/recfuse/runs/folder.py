"""Run folders: everything needed to reproduce and audit one run, written all-or-nothing.

A run is built in a hidden temporary folder and renamed into place when it finishes, so a failed
run leaves no partial output behind.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from recfuse import atomic
from recfuse.evaluation.markdown import metrics_markdown
from recfuse.provenance import package_versions

__all__ = ["RunFolder", "metrics_markdown", "package_versions"]


def _process_started(pid: int) -> float | None:
    """Start time (epoch seconds) of a live process, or None if there is none with that id."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by someone else
    try:
        # field 22 of /proc/PID/stat: start time in clock ticks after boot (after the comm field,
        # which may hold spaces, hence the split at its closing parenthesis)
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(
            float(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return 0.0  # alive, start unknown (no /proc): keep its folder


def clean_stale(root: Path) -> list[Path]:
    """Delete ``.tmp-*-PID`` run folders whose owner is gone (a killed ``recfuse run``).

    A folder is stale when no process has its PID, or when the process with that PID started
    over a minute after the folder was last written (the PID was reused; the margin absorbs
    the drift of the boot-time clock). Returns what was deleted.
    """
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    for tmp in root.glob(".tmp-*-*"):
        pid_text = tmp.name.rsplit("-", 1)[-1]
        if not tmp.is_dir() or not pid_text.isdigit() or int(pid_text) == os.getpid():
            continue
        started = _process_started(int(pid_text))
        if started is None or started > tmp.stat().st_mtime + 60.0:
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


class RunFolder:
    """A run under construction: ``with RunFolder(root, name) as run: ...``.

    Inside the block ``run.path`` is a temporary folder; on success it becomes
    ``<root>/<name>-<UTC time>``, on an exception it is deleted.
    """

    def __init__(self, root: str | Path, name: str) -> None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
        self.final = Path(root) / f"{name}-{stamp}-{os.getpid()}"
        self.path = Path(root) / f".tmp-{self.final.name}"
        self.logger = logging.getLogger(f"recfuse.run.{self.final.name}")

    def __enter__(self) -> RunFolder:
        clean_stale(self.path.parent)
        self.path.mkdir(parents=True, exist_ok=False)
        self._handler = logging.FileHandler(self.path / "log.txt")
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self.logger.addHandler(self._handler)
        self.logger.setLevel(logging.INFO)
        atomic.write_json(self.path / "versions.json", package_versions())
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.logger.removeHandler(self._handler)
        self._handler.close()
        if exc_type is None:
            os.replace(self.path, self.final)
            self.path = self.final
        else:
            shutil.rmtree(self.path, ignore_errors=True)

    def log(self, message: str) -> None:
        self.logger.info(message)

    def write_config(self, config: dict[str, Any]) -> None:
        atomic.write_text(self.path / "config.yaml", yaml.safe_dump(config, sort_keys=False))

    def write_json(self, name: str, obj: Any) -> None:
        atomic.write_json(self.path / name, obj)

    def write_text(self, name: str, text: str) -> None:
        atomic.write_text(self.path / name, text)

    def write_frame(self, name: str, frame: pd.DataFrame) -> None:
        with atomic.atomic_path(self.path / name) as tmp:
            frame.to_parquet(tmp, index=False)
