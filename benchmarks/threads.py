"""1 vs 2 threads on this 2-core machine, alone and next to a second job of the same kind.

The workload is a short SASRec training run on ml-100k (``--epochs`` epochs with validation, the
loop every torch model here shares) launched as a subprocess with OMP/MKL threads set. Four
settings: one job with 1 thread, one job with 2 threads, two concurrent jobs with 1 thread each,
two concurrent jobs with 2 threads each. Prints seconds per epoch (the mean of the concurrent
jobs) and the load average. Run through ``/work/shared/tools/heavy`` so no other heavy job shares
the cores.

    /work/shared/tools/heavy -- python benchmarks/threads.py --out benchmarks/results/threads.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from recfuse.atomic import write_text

HERE = Path(__file__).resolve().parent


def launch(threads: int, epochs: int, out: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, str(HERE / "sasrec_windows.py"), "--seeds", "0", "--epochs"]
    cmd += [str(epochs), "--patience", str(epochs + 1), "--out", str(out)]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)


def setting(threads: int, jobs: int, epochs: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        outs = [Path(tmp) / f"{i}.json" for i in range(jobs)]
        procs = [launch(threads, epochs, out) for out in outs]
        for proc in procs:
            if proc.wait() != 0:
                raise RuntimeError(f"job failed: {proc.args!r}")
        per_epoch = [json.loads(o.read_text())["runs"][0]["s per epoch"] for o in outs]
    row = {
        "threads": threads,
        "concurrent jobs": jobs,
        "s per epoch": sum(per_epoch) / jobs,
        "epochs per s, all jobs": sum(1 / p for p in per_epoch),
        "load after": os.getloadavg()[0],
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    rows = [setting(t, j, args.epochs) for j in (1, 2) for t in (1, 2)]
    meta = {"cores": os.cpu_count(), "workload": "SASRec ml-100k, max_len 50, batch 128"}
    write_text(args.out, json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
