"""Overhead of governing an action: policy check + ledger append, against the same action bare.

Measures, each as the median over ``--repeats`` independent runs of ``--actions`` calls:
- latency of a real action (top-10 items by popularity on amazon-scientific) ungoverned and
  through `Governor.run` (Cedar + SQLite Merkle ledger), median and p99, and their difference;
- the parts: Cedar authorization alone, one ledger append alone;
- appends/s: one process, one process batched (`append_many`), four processes at once;
- append latency on a ledger that already holds 100,000 entries (it must not grow with size);
- `verify_ledger` time for the 100,000-entry ledger;
- an MCP tool call through `GovernedToolbox` vs the same MCP call ungoverned.

Both ledger durability settings are measured (``durable=False``: WAL + synchronous=NORMAL, the
default; ``durable=True``: fsync per commit). Results go to ``docs/governance.md`` (between the
benchmark markers) and, with config and versions, to ``runs/bench/``.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/governance_overhead.py
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import multiprocessing as mp
import os
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from recfuse.atomic import write_json, write_text  # noqa: E402
from recfuse.data import load_dataset  # noqa: E402
from recfuse.governance.governor import Governor  # noqa: E402
from recfuse.governance.ledger import Ledger  # noqa: E402
from recfuse.governance.policy import Policies, Resource  # noqa: E402
from recfuse.governance.verify import verify_ledger  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "governance.md"
START, END = "<!-- governance-benchmark:start -->", "<!-- governance-benchmark:end -->"
POLICY = """
@id("recommend")
permit (principal == Agent::"recommender", action == Action::"recommend", resource)
when { context.k <= 50 && context.min_score >= 0 };
@id("no-test")
forbid (principal, action, resource) when { context has split && context.split == "test" };
"""


def percentile_ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples), q) * 1e3)


def time_calls(fn: Callable[[int], Any], n: int) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t)
    return out


def cpu_calls(fn: Callable[[int], Any], n: int) -> list[float]:
    """Per-call CPU time of this thread: immune to being preempted on a shared machine."""
    out = []
    for i in range(n):
        t = time.thread_time()
        fn(i)
        out.append(time.thread_time() - t)
    return out


def one_repeat(folder: Path, scores: np.ndarray, n: int, durable: bool) -> dict[str, float]:
    """One run: bare action, governed action, Cedar alone, append alone."""
    policies = Policies({"bench.cedar": POLICY})

    def action(user: int) -> list[int]:
        s = scores + (user % 7) * 1e-9  # a per-call input, so nothing is cached
        return np.argpartition(-s, 10)[:10].tolist()

    with Ledger(folder / f"gov-{durable}.db", durable=durable) as ledger:
        gov = Governor(ledger, policies, actor="recommender")
        ctx = {"k": 10, "min_score": 0.0, "split": "valid"}
        time_calls(action, 50)  # warm up
        bare = time_calls(action, n)
        governed = time_calls(
            lambda u: gov.run("recommend", Resource("User", str(u)), action, u, context=ctx), n
        )
        bare_cpu = cpu_calls(action, n)
        governed_cpu = cpu_calls(
            lambda u: gov.run("recommend", Resource("User", str(u)), action, u, context=ctx), n
        )
        cedar = time_calls(
            lambda u: policies.authorize("recommender", "recommend", Resource("User", str(u)), ctx),
            n,
        )
    with Ledger(folder / f"app-{durable}.db", durable=durable) as ledger:
        appends = time_calls(lambda u: ledger.append({"actor": "bench", "user": u}), n)
    return {
        "bare_median_ms": percentile_ms(bare, 50),
        "bare_p99_ms": percentile_ms(bare, 99),
        "governed_median_ms": percentile_ms(governed, 50),
        "governed_p99_ms": percentile_ms(governed, 99),
        "overhead_median_ms": percentile_ms(governed, 50) - percentile_ms(bare, 50),
        "overhead_p99_ms": percentile_ms(governed, 99) - percentile_ms(bare, 99),
        "overhead_cpu_median_ms": percentile_ms(governed_cpu, 50) - percentile_ms(bare_cpu, 50),
        "overhead_cpu_p99_ms": percentile_ms(governed_cpu, 99) - percentile_ms(bare_cpu, 99),
        "cedar_median_ms": percentile_ms(cedar, 50),
        "append_median_ms": percentile_ms(appends, 50),
        "append_p99_ms": percentile_ms(appends, 99),
        "appends_per_s": n / sum(appends),
    }


def batched_rate(folder: Path, n: int) -> float:
    with Ledger(folder / "batch.db") as ledger:
        t = time.perf_counter()
        for start in range(0, n, 100):
            ledger.append_many([{"actor": "bench", "i": i} for i in range(start, start + 100)])
        return n / (time.perf_counter() - t)


def _writer(path: str, n: int, start_at: float) -> None:
    while time.time() < start_at:
        time.sleep(0.001)
    with Ledger(path) as ledger:
        for i in range(n):
            ledger.append({"pid": os.getpid(), "i": i})


def multiprocess_rate(folder: Path, n_per: int, writers: int = 4) -> float:
    path = str(folder / "multi.db")
    Ledger(path).close()
    ctx = mp.get_context("fork")
    start_at = time.time() + 0.3
    procs = [ctx.Process(target=_writer, args=(path, n_per, start_at)) for _ in range(writers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    elapsed = time.time() - start_at
    with Ledger(path) as ledger:
        assert ledger.size() == n_per * writers, "entries lost"
    return n_per * writers / elapsed


def large_ledger(folder: Path, size: int, n: int) -> dict[str, float]:
    with Ledger(folder / "large.db") as ledger:
        for start in range(0, size, 10_000):
            ledger.append_many([{"actor": "bench", "i": i} for i in range(start, start + 10_000)])
        appends = time_calls(lambda u: ledger.append({"actor": "bench", "late": u}), n)
        t = time.perf_counter()
        for i in range(200):
            ledger.inclusion_proof(i * 397 % ledger.size())
        proof_ms = (time.perf_counter() - t) / 200 * 1e3
        final = ledger.size()
    t = time.perf_counter()
    report = verify_ledger(folder / "large.db")
    assert report.ok
    return {
        "size": final,
        "append_median_ms": percentile_ms(appends, 50),
        "append_p99_ms": percentile_ms(appends, 99),
        "inclusion_proof_ms": proof_ms,
        "verify_s": time.perf_counter() - t,
    }


def mcp_overhead(folder: Path, n: int) -> dict[str, float]:
    from recfuse.governance.toolbox import GovernedToolbox

    policies = Policies({"t.cedar": 'permit (principal, action == Action::"top_items", resource);'})
    with Ledger(folder / "mcp.db") as ledger:
        box = GovernedToolbox(Governor(ledger, policies))

        @box.tool(resource=lambda k: Resource("Tool", "top_items"), name="top_items")
        def top_items(k: int) -> list[int]:
            """The first k item ids."""
            return list(range(k))

        run = box._loop.run_until_complete
        time_calls(lambda i: run(box.server.call_tool("top_items", {"k": 10})), 30)
        bare = time_calls(lambda i: run(box.server.call_tool("top_items", {"k": 10})), n)
        governed = time_calls(lambda i: box.call("top_items", {"k": 10}), n)
        box.close()
    return {
        "mcp_bare_median_ms": percentile_ms(bare, 50),
        "mcp_governed_median_ms": percentile_ms(governed, 50),
        "mcp_overhead_median_ms": percentile_ms(governed, 50) - percentile_ms(bare, 50),
    }


def med(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def render(results: dict[str, Any]) -> str:
    cfg = results["config"]
    lines = [
        f"Measured {results['date']} on {cfg['machine']} ({cfg['cpus']} CPUs shared with other jobs), "
        f"Python {cfg['versions']['python']}, cedarpy {cfg['versions']['cedarpy']}, "
        f"OMP_NUM_THREADS={cfg['threads']}. Action: top-10 of {cfg['n_items']} amazon-scientific item "
        f"popularities. Each number is the median over {cfg['repeats']} runs of {cfg['actions']} calls.",
        "",
        "| ledger setting | bare median | governed median | **overhead median** | bare p99 | governed p99 | **overhead p99** | Cedar alone | append alone (median / p99) | appends/s (1 process) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results["per_setting"].items():
        lines.append(
            f"| {name} | {r['bare_median_ms']:.3f} ms | {r['governed_median_ms']:.3f} ms | "
            f"**{r['overhead_median_ms']:.3f} ms** | {r['bare_p99_ms']:.3f} ms | {r['governed_p99_ms']:.3f} ms | "
            f"**{r['overhead_p99_ms']:.3f} ms** | {r['cedar_median_ms']:.3f} ms | "
            f"{r['append_median_ms']:.3f} / {r['append_p99_ms']:.3f} ms | {r['appends_per_s']:,.0f} |"
        )
    big, mcp = results["large"], results["mcp"]
    default = next(iter(results["per_setting"].values()))
    lines += [
        "",
        f"- CPU time (this thread only, so not inflated by other jobs preempting it) of the "
        f"governance overhead, default setting: {default['overhead_cpu_median_ms']:.3f} ms median, "
        f"{default['overhead_cpu_p99_ms']:.3f} ms p99.",
        f"- Throughput, default setting: {results['batched_per_s']:,.0f} appends/s batched "
        f"(`append_many`, 100 per transaction); {results['multiprocess_per_s']:,.0f} appends/s with "
        f"4 processes appending at once (none lost).",
        f"- At {big['size']:,} entries an append still takes {big['append_median_ms']:.3f} ms median "
        f"({big['append_p99_ms']:.3f} ms p99): the frontier is O(log n). An inclusion proof takes "
        f"{big['inclusion_proof_ms']:.3f} ms; `verify_ledger` recomputes all {big['size']:,} entries "
        f"and nodes in {big['verify_s']:.1f} s.",
        f"- Through MCP: an in-process MCP tool call takes {mcp['mcp_bare_median_ms']:.3f} ms bare and "
        f"{mcp['mcp_governed_median_ms']:.3f} ms governed (overhead {mcp['mcp_overhead_median_ms']:.3f} ms).",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--actions", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--no-doc", action="store_true", help="Do not update docs/governance.md.")
    args = parser.parse_args()
    dataset = load_dataset("amazon-scientific")
    scores = np.bincount(dataset.interactions["item"].to_numpy(), minlength=dataset.n_items)
    scores = scores.astype(np.float64)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        per_setting = {}
        for durable, name in (
            (False, "WAL, synchronous=NORMAL (default)"),
            (True, "WAL, fsync per commit (durable=True)"),
        ):
            n = args.actions if not durable else max(200, args.actions // 5)
            runs = []
            for r in range(args.repeats):
                sub = folder / f"{durable}-{r}"
                sub.mkdir()
                runs.append(one_repeat(sub, scores, n, durable))
            per_setting[name] = med(runs)
            print(name, json.dumps(per_setting[name], indent=1))
        batched = statistics.median(
            batched_rate(folder / f"b{r}", 5000)
            for r in range(args.repeats)
            if (folder / f"b{r}").mkdir() is None
        )
        multi = statistics.median(
            multiprocess_rate(folder / f"m{r}", 500)
            for r in range(3)
            if (folder / f"m{r}").mkdir() is None
        )
        large = large_ledger(folder, args.large, 1000)
        mcp = mcp_overhead(folder, 500)
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "config": {
            "actions": args.actions, "repeats": args.repeats, "n_items": int(dataset.n_items),
            "machine": platform.machine(), "cpus": os.cpu_count(),
            "threads": os.environ.get("OMP_NUM_THREADS"),
            "versions": {"python": platform.python_version(),
                         **{p: importlib.metadata.version(p) for p in ("cedarpy", "cryptography", "mcp", "numpy")}},
        },
        "per_setting": per_setting, "batched_per_s": batched, "multiprocess_per_s": multi,
        "large": large, "mcp": mcp,
    }  # fmt: skip
    print(json.dumps(results, indent=1))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    write_json(ROOT / "runs" / "bench" / f"governance_overhead-{stamp}.json", results)
    if not args.no_doc and DOC.is_file():
        text = DOC.read_text()
        block = f"{START}\n{render(results)}\n{END}"
        if START in text:
            text = re.sub(
                re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S
            )
        else:
            text += "\n" + block + "\n"
        write_text(DOC, text)
        print(f"updated {DOC}")


if __name__ == "__main__":
    main()
