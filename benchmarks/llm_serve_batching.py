"""Does `recfuse llm serve` give concurrent clients batch throughput? Served tokens/s at
concurrency 8 against the in-process batch-8 number, on the same prompts and thread count.

    /work/shared/tools/heavy --threads 1 -- .venv/bin/python benchmarks/llm_serve_batching.py \\
        --threads 1 --max-tokens 24 --rounds 3

Arms (SmolLM2-135M-Instruct, greedy, the 8 caption prompts of llm_throughput.py):

* in-process: `TransformersLLM(batch_size=8).generate(8 prompts)`, ``--rounds`` repeats, median;
* served, concurrency 8: 8 client threads on 127.0.0.1, each sending its prompt ``--rounds``
  times in a row (a new request as soon as its answer arrives); tokens/s over the whole run;
* served, concurrency 8, ``--batch-size 1``: the same load on a server that decodes one request
  at a time (what the server did before batching), one round.

Prints a markdown table and writes JSON under runs/bench/.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from llm_throughput import prompts, start_server  # noqa: E402  (a sibling script, not a package)


def in_process(max_tokens: int, rounds: int) -> dict[str, Any]:
    from recfuse.llm.transformers_backend import TransformersLLM

    llm = TransformersLLM("smollm2", batch_size=8)
    batch = prompts(8)
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        out = llm.generate(batch, max_tokens=max_tokens)
        rates.append(sum(g.completion_tokens for g in out) / (time.perf_counter() - started))
    return {"tokens_per_s": statistics.median(rates), "spread": [min(rates), max(rates)]}


def served(threads: int, max_tokens: int, rounds: int, *extra: str) -> dict[str, Any]:
    """8 concurrent clients, each ``rounds`` requests back to back; tokens/s over the run."""
    import httpx

    from recfuse.llm.http_backend import HTTPLLM

    proc, url = start_server(threads, *extra)
    try:
        batch = prompts(8)
        HTTPLLM(url, "smollm2").generate([batch[0]], max_tokens=2)  # warm-up, not timed
        before = httpx.get(url.removesuffix("/v1") + "/health").json()["batching"]
        tokens = [0] * len(batch)

        def client(i: int) -> None:
            llm = HTTPLLM(url, "smollm2", timeout_s=600, concurrency=1)
            for _ in range(rounds):
                tokens[i] += llm.generate([batch[i]], max_tokens=max_tokens)[0].completion_tokens

        workers = [threading.Thread(target=client, args=(i,)) for i in range(len(batch))]
        started = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        wall = time.perf_counter() - started
        after = httpx.get(url.removesuffix("/v1") + "/health").json()["batching"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    batches = after["batches"] - before["batches"]
    return {
        "tokens_per_s": sum(tokens) / wall,
        "requests": len(batch) * rounds,
        "batches": batches,
        "mean_rows_per_batch": (after["rows"] - before["rows"]) / max(1, batches),
        "wall_s": wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from recfuse.atomic import write_json

    load_start = os.getloadavg()
    arms = {"in-process, batch 8": in_process(args.max_tokens, args.rounds)}
    arms["served, concurrency 8"] = served(args.threads, args.max_tokens, args.rounds)
    arms["served, concurrency 8, --batch-size 1"] = served(
        args.threads, args.max_tokens, 1, "--batch-size", "1"
    )
    reference = arms["in-process, batch 8"]["tokens_per_s"]
    results = {
        "config": vars(args) | {"out": str(args.out)},
        "load_avg": [load_start, os.getloadavg()],
        "arms": arms,
        "served_over_in_process": arms["served, concurrency 8"]["tokens_per_s"] / reference,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"llm_serve_batching-{time.strftime('%Y%m%d-%H%M%S')}.json", results)
    print("| arm | generated tokens/s | relative to in-process batch 8 | rows per batch |")
    print("|---|---|---|---|")
    for name, arm in arms.items():
        rows = arm.get("mean_rows_per_batch")
        print(
            f"| {name} | {arm['tokens_per_s']:.1f} | {arm['tokens_per_s'] / reference:.2f} | "
            f"{'8 (by construction)' if rows is None else f'{rows:.1f}'} |"
        )
    print(f"load average {load_start} -> {os.getloadavg()}")


if __name__ == "__main__":
    main()
