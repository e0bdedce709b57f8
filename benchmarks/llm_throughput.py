"""LLM runtime throughput: prompts/s and generated tokens/s per backend, score calls/s, and cache
lookups/s — each the median of repeats.

    .venv/bin/python benchmarks/llm_throughput.py --threads 2 --prompts 8 --max-tokens 32

Backends: transformers (SmolLM2, batch 1 and batch 8), http (`recfuse llm serve` on 127.0.0.1 as
a subprocess with the same thread count, client concurrency 4), llamacpp (only if
llama-cpp-python is installed; otherwise reported as not installed). Prints a markdown table and
writes JSON under runs/bench/. The machine's load average is recorded: on a shared 2-core
machine other people's jobs slow every number down.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TITLES = [
    "Dune",
    "Emma",
    "Walden",
    "Hamlet",
    "Solaris",
    "Kindred",
    "Beloved",
    "Ulysses",
    "Dracula",
    "Rebecca",
    "Middlemarch",
    "Persuasion",
    "Frankenstein",
    "Ivanhoe",
    "Candide",
    "Lolita",
]


def median_rate(fn: Callable[[], tuple[int, int]], repeats: int) -> dict[str, float]:
    """Run ``fn`` (returning (units, tokens)) ``repeats`` times; median units/s and tokens/s."""
    unit_rates, token_rates = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        units, tokens = fn()
        wall = time.perf_counter() - start
        unit_rates.append(units / wall)
        token_rates.append(tokens / wall)
    return {
        "per_s": statistics.median(unit_rates),
        "tokens_per_s": statistics.median(token_rates),
        "spread_per_s": [min(unit_rates), max(unit_rates)],
    }


def prompts(n: int) -> list[Any]:
    from recfuse.llm import PromptTemplate

    template = PromptTemplate(user="In one sentence, what is this book about?\n{title}")
    return [template.build({"title": TITLES[i % len(TITLES)]}) for i in range(n)]


def bench_backend(llm: Any, n: int, max_tokens: int, repeats: int) -> dict[str, Any]:
    batch = prompts(n)

    def gen() -> tuple[int, int]:
        out = llm.generate(batch, max_tokens=max_tokens)
        return len(out), sum(g.completion_tokens for g in out)

    def score() -> tuple[int, int]:
        for title in TITLES[:4]:
            llm.score(f"Is {title} a novel? Answer yes or no.", ["yes", "no"])
        return 4, 0

    llm.generate(batch[:1], max_tokens=2)  # warm-up: first-call allocations
    result = {"generate": median_rate(gen, repeats), "score": median_rate(score, repeats)}
    print(f"  {type(llm).__name__}: {json.dumps(result)}", flush=True)
    return result


def bench_cache(n_rows: int, repeats: int, folder: Path) -> dict[str, float]:
    from recfuse.llm.cache import LLMCache, OutputRow, cache_key

    db = folder / "bench_cache.sqlite"
    db.unlink(missing_ok=True)
    cache = LLMCache(db)
    keys = [cache_key("transformers", "m", "v1", {"raw": f"p{i}"}, {"i": i}) for i in range(n_rows)]
    rows = [
        OutputRow(
            k,
            "transformers",
            "m",
            "v1",
            {"raw": "p"},
            {},
            "ok",
            "text " * 10,
            "x",
            None,
            1,
            20,
            10,
            0.1,
        )
        for k in keys
    ]
    for start in range(0, n_rows, 1000):
        cache.put_many(rows[start : start + 1000])
    missing = [cache_key("x", "m", "v1", {"raw": str(i)}, {}) for i in range(n_rows)]
    probe = keys[::2] + missing[::2]

    def bulk_lookup() -> tuple[int, int]:
        cache.done_keys(probe)
        return len(probe), 0

    def single_gets() -> tuple[int, int]:
        for key in keys[:2000]:
            cache.get(key)
        return 2000, 0

    def hashing() -> tuple[int, int]:
        for i in range(20000):
            cache_key("t", "m", "v", {"raw": f"q{i}"}, {"i": i})
        return 20000, 0

    bulk = median_rate(bulk_lookup, repeats)
    single = median_rate(single_gets, repeats)
    keying = median_rate(hashing, repeats)
    cache.close()
    return {
        "bulk_lookups_per_s": bulk["per_s"],
        "single_gets_per_s": single["per_s"],
        "keys_hashed_per_s": keying["per_s"],
        "rows": n_rows,
    }


def start_server(threads: int) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from recfuse.cli import main; main()",
            "llm",
            "serve",
            "--port",
            str(port),
            "--threads",
            str(threads),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache-rows", type=int, default=20000)
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from recfuse.atomic import write_json
    from recfuse.llm.transformers_backend import TransformersLLM

    results: dict[str, Any] = {
        "config": vars(args) | {"out": str(args.out)},
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_start": os.getloadavg(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "backends": {},
    }
    for batch_size in (1, 8):
        llm = TransformersLLM("smollm2", batch_size=batch_size)
        results["backends"][f"transformers (batch {batch_size})"] = bench_backend(
            llm, args.prompts, args.max_tokens, args.repeats
        )
    if not args.skip_http:
        from recfuse.llm.http_backend import HTTPLLM

        proc, url = start_server(args.threads)
        try:
            client = HTTPLLM(url, "smollm2", concurrency=4, timeout_s=300)
            results["backends"]["http (recfuse llm serve, concurrency 4)"] = bench_backend(
                client, args.prompts, args.max_tokens, args.repeats
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    try:
        from recfuse.llm.llamacpp_backend import LlamaCppLLM

        results["backends"]["llamacpp"] = bench_backend(
            LlamaCppLLM("smollm2", threads=args.threads),
            args.prompts,
            args.max_tokens,
            args.repeats,
        )
    except Exception as exc:  # the optional extra is usually absent: say so in the table
        results["backends"]["llamacpp"] = {"error": str(exc).split(".")[0]}
    args.out.mkdir(parents=True, exist_ok=True)
    results["cache"] = bench_cache(args.cache_rows, args.repeats, args.out)
    results["machine"]["load_avg_end"] = os.getloadavg()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    write_json(args.out / f"llm_throughput-{stamp}.json", results)

    print(
        f"\nthreads={args.threads}, {args.prompts} prompts x {args.max_tokens} max tokens, "
        f"greedy, median of {args.repeats}; load avg {results['machine']['load_avg_start'][0]:.1f}"
        f" -> {results['machine']['load_avg_end'][0]:.1f}\n"
    )
    print("| backend | prompts/s | generated tokens/s | score calls/s (2 options) |")
    print("|---|---|---|---|")
    for name, r in results["backends"].items():
        if "error" in r:
            print(f"| {name} | — | — | — ({r['error']}) |")
            continue
        g, s = r["generate"], r["score"]
        print(f"| {name} | {g['per_s']:.2f} | {g['tokens_per_s']:.1f} | {s['per_s']:.2f} |")
    c = results["cache"]
    print(
        f"\ncache ({c['rows']} rows): {c['bulk_lookups_per_s']:,.0f} bulk key lookups/s, "
        f"{c['single_gets_per_s']:,.0f} single gets/s, {c['keys_hashed_per_s']:,.0f} keys hashed/s"
    )
    print(json.dumps({"json": str(args.out)}))


if __name__ == "__main__":
    main()
