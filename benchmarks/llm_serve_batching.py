"""Does `recfuse llm serve` give concurrent clients batch throughput? Served tokens/s at
concurrency 8 against the in-process batch-8 number, on the same prompts and thread count.

    /work/shared/tools/heavy --threads 1 -- .venv/bin/python benchmarks/llm_serve_batching.py \\
        --threads 1 --max-tokens 24 --rounds 5

SmolLM2-135M-Instruct, greedy, the 8 caption prompts of llm_throughput.py. ``--rounds`` times,
alternating (so each pair of numbers sees the same load on a shared machine):

* in-process: `TransformersLLM(batch_size=8).generate(8 prompts)`;
* served: 8 client threads on 127.0.0.1, released together, each sending its prompt once.

Then once more against a server started with ``--batch-size 1``, which decodes one request at a
time (what the server did before batching).

Prints a markdown table and writes JSON under runs/bench/.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from llm_throughput import gen_prompts as prompts  # noqa: E402  (a sibling script, not a package)

from recfuse.llm.base import GenerationParams


def start_server(threads: int, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """A `recfuse llm serve` subprocess on a free 127.0.0.1 port (``extra``: more options)."""
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
            *extra,
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


def served_round(clients: list[Any], batch: list[Any], max_tokens: int) -> tuple[int, float]:
    """Every client sends its prompt at once (a barrier); (generated tokens, wall seconds)."""
    tokens = [0] * len(batch)
    start_line = threading.Barrier(len(batch) + 1)

    def client(i: int) -> None:
        start_line.wait()
        tokens[i] = (
            clients[i]
            .generate([batch[i]], GenerationParams(max_tokens=max_tokens))[0]
            .completion_tokens
        )

    workers = [threading.Thread(target=client, args=(i,)) for i in range(len(batch))]
    for w in workers:
        w.start()
    start_line.wait()
    started = time.perf_counter()
    for w in workers:
        w.join()
    return sum(tokens), time.perf_counter() - started


def compare(threads: int, max_tokens: int, rounds: int, *extra: str) -> dict[str, Any]:
    """Alternate an in-process batch-8 call and a served round of 8 concurrent clients, so that
    each pair sees the same machine load; per-pair tokens/s and their ratio."""
    import httpx

    from recfuse.llm.http_backend import HTTPLLM
    from recfuse.llm.transformers_backend import TransformersLLM

    proc, url = start_server(threads, *extra)
    try:
        llm = TransformersLLM("smollm2", batch_size=8)
        batch = prompts(8)
        clients = [HTTPLLM(url, "smollm2", timeout_s=600, concurrency=1) for _ in batch]
        clients[0].generate([batch[0]], GenerationParams(max_tokens=2))  # warm-up, not timed
        health = url.removesuffix("/v1") + "/health"
        before = httpx.get(health).json()["batching"]
        local, remote = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            out = llm.generate(batch, GenerationParams(max_tokens=max_tokens))
            wall = time.perf_counter() - started
            local.append(sum(g.completion_tokens for g in out) / wall)
            tokens, wall = served_round(clients, batch, max_tokens)
            remote.append(tokens / wall)
        after = httpx.get(health).json()["batching"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    batches = max(1, after["batches"] - before["batches"])
    return {
        "in_process_tokens_per_s": local,
        "served_tokens_per_s": remote,
        "ratios": [r / loc for r, loc in zip(remote, local, strict=True)],
        "median_ratio": statistics.median(r / loc for r, loc in zip(remote, local, strict=True)),
        "mean_rows_per_batch": (after["rows"] - before["rows"]) / batches,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-unbatched", action="store_true", help="leave out the third arm")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    import torch

    torch.set_num_threads(args.threads)
    from recfuse.atomic import write_json

    load_start = os.getloadavg()
    arms = {"batching on": compare(args.threads, args.max_tokens, args.rounds)}
    if not args.skip_unbatched:
        arms["--batch-size 1"] = compare(args.threads, args.max_tokens, 1, "--batch-size", "1")
    results = {
        "config": vars(args) | {"out": str(args.out)},
        "load_avg": [load_start, os.getloadavg()],
        "arms": arms,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"llm_serve_batching-{time.strftime('%Y%m%d-%H%M%S')}.json", results)
    print("| server | in-process batch 8, tokens/s | served, 8 clients, tokens/s | served / in-process "
          "(median of pairs) | rows per batch |")  # fmt: skip
    print("|---|---|---|---|---|")
    for name, arm in arms.items():
        local = ", ".join(f"{v:.1f}" for v in arm["in_process_tokens_per_s"])
        remote = ", ".join(f"{v:.1f}" for v in arm["served_tokens_per_s"])
        print(
            f"| {name} | {local} | {remote} | {arm['median_ratio']:.2f} | "
            f"{arm['mean_rows_per_batch']:.1f} |"
        )
    print(f"load average {load_start} -> {os.getloadavg()}")


if __name__ == "__main__":
    main()
