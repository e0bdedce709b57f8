"""Caption throughput per LLM backend on real item texts, through the real caption path.

    ../shared/tools/heavy --threads 1 -- .venv/bin/python benchmarks/caption_speed.py \
        --runs amazon-scientific:ctranslate2:128 amazon-scientific:transformers:32 --threads 1

Each run captions the first N items of a dataset (default item text, SmolLM2-135M-Instruct,
greedy, 32 new tokens: what `recfuse features captions` does) with one backend, through
`generate_captions` (so `LLMJob`, the fence and the SQLite cache are all in the timed path), into a
fresh LLM cache and caption folder under ``--work`` (nothing is answered from an earlier run).
Items go in chunks (32 for CTranslate2, its batch; 8 for transformers); ``--deadline-s`` bounds
the whole script: a run stops after the chunk that crosses it and reports what it finished.
Reported per run: model load seconds, items/s and generated (and prompt) tokens/s over the
generation time, the share of captions cut at the token limit, and the hours to caption every
item of amazon-scientific (4,344) and MicroLens-50k (19,220) at that rate. Prints a markdown
table and writes ``caption_speed.json`` (numbers only: no caption text, it derives from the data).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CATALOGUES = {"amazon-scientific": 4344, "microlens-50k": 19220}


class CountingLLM:
    """Delegates to a built backend and adds up what its ``generate`` calls returned."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm
        self.backend = llm.backend
        self.model_id = llm.model_id
        self.prompts = self.prompt_tokens = self.completion_tokens = self.cut = 0

    def generate(self, prompts: Sequence[Any], params: Any = None) -> list[Any]:
        out = self.llm.generate(prompts, params)
        self.prompts += len(out)
        self.prompt_tokens += sum(g.prompt_tokens for g in out)
        self.completion_tokens += sum(g.completion_tokens for g in out)
        self.cut += sum(g.finish_reason == "length" for g in out)
        return list(out)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.llm, name)


def run_one(
    dataset: str, kind: str, n: int, threads: int, work: Path, deadline: float, max_tokens: int
) -> dict[str, Any]:
    """Caption the first ``n`` items of ``dataset`` with backend ``kind``; the measured rates."""
    from recfuse.data import load_dataset
    from recfuse.features.captions import caption_backend, generate_captions
    from recfuse.llm.cache import LLMCache

    texts = load_dataset(dataset).item_texts(None)[:n]
    started = time.perf_counter()
    spec = caption_backend(kind, threads=threads)
    llm = CountingLLM(spec.build())
    load_s = time.perf_counter() - started
    chunk = max(32, spec.effective_batch_size()) if kind == "ctranslate2" else 8
    folder = work / f"{dataset}-{kind}"
    cache = LLMCache(work / f"{dataset}-{kind}.sqlite")
    gen_s, finished = 0.0, False
    while not finished and time.time() < deadline:
        t0 = time.perf_counter()
        # one new chunk per call (earlier ones come back from the cache); timed as a whole
        result = generate_captions(
            texts, folder, max_tokens=max_tokens, chunk_items=chunk, max_chunks=1,
            progress=False, backend=llm, cache=cache,
        )  # fmt: skip
        gen_s += time.perf_counter() - t0
        finished = result is not None
    done = llm.prompts
    rate = done / gen_s if gen_s else 0.0
    row: dict[str, Any] = {
        "dataset": dataset,
        "backend": spec.resolved_kind(),
        "model_id": llm.model_id,
        "threads": threads,
        "batch_size": spec.effective_batch_size(),
        "items_asked": n,
        "items_done": done,
        "finished": finished,
        "load_s": round(load_s, 2),
        "generate_s": round(gen_s, 2),
        "items_per_s": round(rate, 3),
        "gen_tokens_per_s": round(llm.completion_tokens / gen_s, 1) if gen_s else 0.0,
        "prompt_tokens_per_s": round(llm.prompt_tokens / gen_s, 1) if gen_s else 0.0,
        "mean_prompt_tokens": round(llm.prompt_tokens / max(done, 1), 1),
        "mean_gen_tokens": round(llm.completion_tokens / max(done, 1), 1),
        "cut_at_limit": round(llm.cut / max(done, 1), 3),
    }
    for name, size in CATALOGUES.items():
        row[f"hours_all_{name}"] = round(size / rate / 3600, 2) if rate else None
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", default=["amazon-scientific:ctranslate2:128"],
                        help="dataset:backend:items, run in this order")  # fmt: skip
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--deadline-s", type=float, default=220.0)
    parser.add_argument("--work", default=None, help="scratch folder (default: a temp folder)")
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    deadline = time.time() + args.deadline_s
    work = Path(args.work or tempfile.mkdtemp(prefix="caption-speed-"))
    rows = []
    for spec in args.runs:
        dataset, kind, n = spec.split(":")
        if time.time() >= deadline:
            print(f"skipped {spec}: past the deadline")
            continue
        row = run_one(dataset, kind, int(n), args.threads, work, deadline, args.max_tokens)
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| dataset | backend | threads | items | load s | items/s | gen tok/s | prompt tok/s "
          "| prompt tok/item | cut at 32 | all amazon-scientific h | all MicroLens-50k h |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['dataset']} | {r['backend']} | {r['threads']} | {r['items_done']}"
              f"{'' if r['finished'] else ' (deadline)'} | {r['load_s']} | {r['items_per_s']} "
              f"| {r['gen_tokens_per_s']} | {r['prompt_tokens_per_s']} | "
              f"{r['mean_prompt_tokens']} | {r['cut_at_limit']:.0%} | "
              f"{r['hours_all_amazon-scientific']} | {r['hours_all_microlens-50k']} |")  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"cpu": platform.processor() or platform.machine(), "load": os.getloadavg()}
    (out / "caption_speed.json").write_text(json.dumps({"meta": meta, "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
