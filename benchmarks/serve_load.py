"""Load test of `recfuse serve` on 127.0.0.1, gate on and off, plus the gate's in-process cost.

    ../shared/tools/heavy -- .venv/bin/python benchmarks/serve_load.py [--run RUN]

Bounded: ``--requests`` requests (default 2,000) at ``--concurrency`` (default 16) against a
server this script starts and stops itself, only on the loopback address. Without ``--run`` it
first trains EASE on ml-100k into a temporary folder. Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(run: Path, ledger: Path, gate: bool) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    cmd = [sys.executable, "-m", "recfuse.cli", "serve", "--run", str(run), "--port", str(port)]
    cmd += ["--ledger", str(ledger)] + ([] if gate else ["--no-gate"])
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("server did not start")


def load(url: str, users: list[str], n: int, concurrency: int) -> tuple[list[float], int, float]:
    """``n`` GET /recommend requests from ``concurrency`` threads: (latencies s, errors, wall s)."""
    local = threading.local()
    rng = random.Random(0)
    picks = [rng.choice(users) for _ in range(n)]

    def one(user: str) -> tuple[float, bool]:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(timeout=30)
        t0 = time.perf_counter()
        response = client.get(f"{url}/recommend", params={"user": user, "k": 10})
        return time.perf_counter() - t0, response.status_code == 200

    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, picks))
    wall = time.perf_counter() - started
    return [r[0] for r in results], sum(not ok for _, ok in results), wall


def served_entries(ledger: Path) -> tuple[int, bool]:
    verify = subprocess.run(
        [sys.executable, "-m", "recfuse.cli", "ledger", "verify", str(ledger)], capture_output=True
    )
    from recfuse.governance.ledger import Ledger

    with Ledger(ledger) as led:
        count = sum(1 for e in led.entries() if e.get("action") == "recommend")
    return count, verify.returncode == 0


def gate_overhead_ms(run: Path, users: list[str], n: int = 2000) -> tuple[float, float]:
    """Median in-process time of one request with and without gate + ledger (ms)."""
    from recfuse.serving import engine
    from recfuse.serving.server import build_service

    medians = []
    with tempfile.TemporaryDirectory() as tmp:
        for gate in (True, False):
            service = build_service(run, gate=gate, ledger=Path(tmp) / "ledger.db")
            queries = [(u, engine.history_of(service.model, u, None)) for u in users[:200]]
            times = []
            for i in range(n):
                user, query = queries[i % len(queries)]
                t0 = time.perf_counter()
                service.recommend(f"bench-{i % 4}", user, query, 10)
                times.append(time.perf_counter() - t0)
            service.batcher.close()
            service.gate.close()
            medians.append(statistics.median(times) * 1e3)
    return medians[0], medians[1]


def train_ease(out: Path) -> Path:
    from recfuse.runs import load_config, run_config

    config = load_config(
        overrides=[
            "name=ease-serve",
            "data.name=ml-100k",
            "model.name=ease",
            "model.params={l2: 500.0}",
            f"output={out}",
            "eval.ks=[10]",
        ]
    )
    return run_config(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="serve-load-"))
    run = args.run or train_ease(tmp / "runs")
    from recfuse.runs.load import load_run

    users = [str(u) for u in load_run(run).ids_.user_ids]
    rows = []
    for gate in (True, False):
        ledger = tmp / f"ledger-{gate}.db"
        proc, url = start(run, ledger, gate)
        load(url, users, 50, args.concurrency)  # warm-up
        latencies, errors, wall = load(url, users, args.requests, args.concurrency)
        proc.send_signal(signal.SIGTERM)
        t0 = time.perf_counter()
        proc.wait(timeout=30)
        stop_s = time.perf_counter() - t0
        entries, verified = served_entries(ledger) if gate else (0, True)
        ms = np.array(latencies) * 1e3
        rows.append(
            {
                "gate": "on" if gate else "off",
                "requests": args.requests,
                "errors": errors,
                "req/s": args.requests / wall,
                "p50 ms": float(np.percentile(ms, 50)),
                "p99 ms": float(np.percentile(ms, 99)),
                "SIGTERM s": stop_s,
                "ledger entries": entries,
                "verify": "ok" if verified else "FAILED",
            }
        )
    on_ms, off_ms = gate_overhead_ms(run, users)
    print(
        f"threads: server torch 1, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; "
        f"load {os.getloadavg()[0]:.2f}; run {run}"
    )
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows:
        cells = [f"{v:.1f}" if isinstance(v, float) else str(v) for v in row.values()]
        print("| " + " | ".join(cells) + " |")
    print(f"\nthroughput ratio gate on / off: {rows[0]['req/s'] / rows[1]['req/s']:.2f}")
    print(
        f"in-process median per request: gate on {on_ms:.3f} ms, off {off_ms:.3f} ms, "
        f"gate + ledger overhead {on_ms - off_ms:.3f} ms"
    )


if __name__ == "__main__":
    main()
