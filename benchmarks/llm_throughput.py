"""LLM runtime throughput, every backend side by side in one run, each against the FLOP bound.

    ../shared/tools/heavy --threads 2 -- .venv/bin/python benchmarks/llm_throughput.py

For each thread count (``--threads 1 2``) and backend (transformers, CTranslate2 int8 and
float32, CTranslate2 with two inter-op workers at 2 threads, llama.cpp when installed) it
measures generated tokens/s at batch 1/8/32/64 (``--max-tokens`` new tokens per prompt, greedy)
and two-option score calls/s, one by one (``score``) and batched (``score_many``), on pairwise
"A or B" prompts built by a `PromptTemplate`. In the same run it measures float32 matmul
GFLOP/s at that thread count (model-shaped: [512, 576] x [576, 1536]) and reports each rate as
a fraction of the FLOP bound ``GFLOP/s / (2 * params)`` tokens/s (a score call's bound is that
over the prompt tokens the backend computes: all of them for transformers, those after the
cached template prefix for CTranslate2). int8 kernels can beat a float32 bound. It also reports
how often int8 and transformers make the same A/B choice as CTranslate2 float32. Cache lookups/s are measured as before. ``--build-llamacpp`` compiles
llama-cpp-python first (about 7 minutes; the CMAKE_ARGS of ../shared/ENVIRONMENT.md). Prints
markdown tables and writes JSON under runs/bench/.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recfuse.llm.base import GenerationParams

LLAMACPP_CMAKE_ARGS = "-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
LLAMACPP_VERSION = "0.3.36"
TITLES = [
    "Dune", "Emma", "Walden", "Hamlet", "Solaris", "Kindred", "Beloved", "Ulysses", "Dracula",
    "Rebecca", "Middlemarch", "Persuasion", "Frankenstein", "Ivanhoe", "Candide", "Lolita",
    "Hyperion", "Neuromancer",
]  # fmt: skip
PARAMS = 134_515_008  # SmolLM2-135M, tied embeddings counted once (they are the LM head)


def gen_prompts(n: int) -> list[Any]:
    from recfuse.llm import PromptTemplate

    template = PromptTemplate(user="Describe this book in three sentences.\n{title}", version="b")
    return [template.build({"title": TITLES[i % len(TITLES)]}) for i in range(n)]


def score_prompts(n: int) -> list[Any]:
    """``n`` distinct pairwise prompts (pairs of titles, each with a two-book history)."""
    from recfuse.llm import PromptTemplate

    template = PromptTemplate(
        user="A reader enjoyed {history}. Which book will they enjoy more? Answer A or B.\n"
        "A: {a}\nB: {b}",
        version="b",
    )
    pairs = [(a, b) for a in TITLES for b in TITLES if a != b]
    return [
        template.build({"history": f"{TITLES[i % 7]}; {TITLES[(i + 3) % 11]}", "a": a, "b": b})
        for i, (a, b) in enumerate(pairs[:n])
    ]


def timed(fn: Callable[[], int]) -> tuple[int, float]:
    start = time.perf_counter()
    units = fn()
    return units, time.perf_counter() - start


def matmul_gflops(threads: int, seconds: float = 2.0) -> float:
    """Measured float32 matmul GFLOP/s at ``threads`` (the shapes of SmolLM2's MLP)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(512, 576), torch.randn(576, 1536)
    for _ in range(3):
        a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    return 2 * 512 * 576 * 1536 * n / (time.perf_counter() - start) / 1e9


def bench_generate(llm: Any, batches: list[int], max_tokens: int) -> dict[str, Any]:
    out = {}
    llm.generate(gen_prompts(2), GenerationParams(max_tokens=2))  # warm-up
    for size in batches:
        prompts = gen_prompts(size)

        def run(p: list[Any] = prompts) -> int:
            return sum(
                g.completion_tokens
                for g in llm.generate(p, GenerationParams(max_tokens=max_tokens))
            )

        tokens, wall = timed(run)
        out[str(size)] = {"tokens": tokens, "seconds": wall, "tokens_per_s": tokens / wall}
        print(f"    batch {size}: {tokens / wall:.1f} tok/s", flush=True)
    return out


def bench_score(llm: Any, n_single: int, n_many: int) -> dict[str, Any]:
    from recfuse.llm import ScoreManyMixin, score_many

    single = score_prompts(n_single)
    # Backends without a batched score_many loop over `score`: a short list says as much.
    native = getattr(type(llm), "score_many", None) not in (None, ScoreManyMixin.score_many)
    many = score_prompts(n_many if native else n_single)
    llm.score(single[0], ["A", "B"])  # warm-up
    n, wall = timed(lambda: len([llm.score(p, ["A", "B"]) for p in single]))
    scores: list[Any] = []

    def batched() -> int:
        scores.extend(score_many(llm, [(p, ["A", "B"]) for p in many]))
        return len(scores)

    m, wall_many = timed(batched)
    split = [llm.encode_split(p) for p in many] if hasattr(llm, "encode_split") else [([], 0)]
    tokens = sum(len(ids) for ids, _ in split) / len(split)
    shared = sum(k for _, k in split) / len(split)
    print(f"    score: {n / wall:.1f}/s one by one, {m / wall_many:.1f}/s batched", flush=True)
    return {
        "one_by_one_per_s": n / wall,
        "batched_per_s": m / wall_many,
        "batched_items": m,
        "prompt_tokens": tokens,
        "shared_prefix_tokens": shared,
        "margins": [float(x[0] - x[1]) for x in scores],  # log p(A) - log p(B), prompt order
    }


def agreement(run: dict[str, Any], reference: str = "ctranslate2 float32") -> dict[str, Any]:
    """Per backend: share of A/B choices equal to ``reference``'s and mean |margin difference|."""
    ref = run["backends"].get(reference, {}).get("score", {}).get("margins")
    out = {}
    for name, r in run["backends"].items():
        margins = r.get("score", {}).get("margins")
        if not ref or not margins or name == reference:
            continue
        n = min(len(ref), len(margins))
        same = sum((a > 0) == (b > 0) for a, b in zip(ref[:n], margins[:n], strict=True))
        diff = sum(abs(a - b) for a, b in zip(ref[:n], margins[:n], strict=True)) / n
        out[name] = {"items": n, "same_choice": same / n, "mean_abs_margin_diff": diff}
    return out


def backends(threads: int, skip: set[str]) -> list[tuple[str, Callable[[], Any]]]:
    from recfuse.llm.ctranslate2_backend import CTranslate2LLM
    from recfuse.llm.transformers_backend import TransformersLLM

    out: list[tuple[str, Callable[[], Any]]] = [
        ("transformers", lambda: TransformersLLM("smollm2", batch_size=64, threads=threads)),
        ("ctranslate2 int8", lambda: CTranslate2LLM(batch_size=64, threads=threads)),
    ]
    if threads == 1:  # the parity configuration; one thread count keeps the run short
        out.append(
            (
                "ctranslate2 float32",
                lambda: CTranslate2LLM(compute_type="float32", batch_size=64, threads=threads),
            )
        )
    if threads == 2:
        out.append(
            (
                "ctranslate2 int8 (2 workers x 1 thread)",
                lambda: CTranslate2LLM(batch_size=32, threads=1, inter_threads=2),
            )
        )
    try:
        import llama_cpp  # noqa: F401

        from recfuse.llm.llamacpp_backend import LlamaCppLLM

        out.append(("llamacpp Q4 (sequential)", lambda: LlamaCppLLM("smollm2", threads=threads)))
    except ImportError:
        pass
    return [(name, make) for name, make in out if name.split()[0] not in skip]


def build_llamacpp() -> None:
    """Compile llama-cpp-python into this interpreter's environment (about 7 minutes)."""
    env = dict(os.environ, CMAKE_ARGS=LLAMACPP_CMAKE_ARGS, FORCE_CMAKE="1")
    cmd = [sys.executable, "-m", "pip", "install", f"llama-cpp-python=={LLAMACPP_VERSION}"]
    print(f"building: CMAKE_ARGS={LLAMACPP_CMAKE_ARGS!r} {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, env=env, check=True)


def table(results: dict[str, Any], batches: list[int]) -> str:
    """Markdown: one row per (threads, backend); ``(x%)`` is the fraction of the FLOP bound."""
    cols = [f"tok/s @{b}" for b in batches] + ["score/s one by one", "score/s batched"]
    lines = ["| threads | backend | " + " | ".join(cols) + " |", "|---" * (len(cols) + 2) + "|"]
    for threads, run in results["runs"].items():
        bound = run["token_bound_per_s"]
        for name, r in run["backends"].items():
            if "error" in r:
                lines.append(f"| {threads} | {name} | " + " | ".join(["—"] * len(cols)) + " |")
                lines[-1] += f" {r['error']}"
                continue
            cells = [
                f"{g['tokens_per_s']:.1f} ({g['tokens_per_s'] / bound:.0%})"
                for g in r["generate"].values()
            ]
            cells += ["—"] * (len(batches) - len(cells))
            s = r["score"]
            # The bound for the prompt tokens this backend computes (CTranslate2 computes a
            # shared template prefix once, so only the rest counts).
            computed = s["prompt_tokens"] - (
                s["shared_prefix_tokens"] if "ctranslate2" in name else 0
            )
            score_bound = bound / max(computed, 1)
            cells += [
                f"{s['one_by_one_per_s']:.1f}",
                f"{s['batched_per_s']:.1f} ({s['batched_per_s'] / score_bound:.0%})",
            ]
            lines.append(f"| {threads} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--score-single", type=int, default=16)
    parser.add_argument("--score-many", type=int, default=256)
    parser.add_argument("--skip", nargs="*", default=[], help="backend families to skip")
    parser.add_argument("--cache-rows", type=int, default=20000)
    parser.add_argument("--build-llamacpp", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    args = parser.parse_args()
    if args.build_llamacpp:
        build_llamacpp()
    import torch

    from recfuse.atomic import write_json

    results: dict[str, Any] = {
        "config": vars(args) | {"out": str(args.out)},
        "machine": {
            "cpus": os.cpu_count(),
            "load_avg_start": os.getloadavg(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "runs": {},
    }
    for threads in args.threads:
        gflops = matmul_gflops(threads)
        run: dict[str, Any] = {
            "matmul_gflops": gflops,
            "token_bound_per_s": gflops * 1e9 / (2 * PARAMS),
            "backends": {},
        }
        print(
            f"threads {threads}: {gflops:.1f} GFLOP/s -> bound {run['token_bound_per_s']:.0f} tok/s"
        )
        for name, make in backends(threads, set(args.skip)):
            print(f"  {name}", flush=True)
            llm = None
            r: dict[str, Any]
            try:
                llm = make()
                sequential = name.startswith("llamacpp")
                r = {
                    "generate": bench_generate(
                        llm, args.batches[:1] if sequential else args.batches, args.max_tokens
                    ),
                    "score": bench_score(llm, args.score_single, args.score_many),
                }
            except Exception as exc:  # report a backend that fails instead of losing the run
                r = {"error": f"{type(exc).__name__}: {str(exc).split('.')[0]}"}
            run["backends"][name] = r
            del llm
        run["agreement_with_float32"] = agreement(run)
        results["runs"][str(threads)] = run
    args.out.mkdir(parents=True, exist_ok=True)
    results["cache"] = bench_cache(args.cache_rows, args.out)
    results["machine"]["load_avg_end"] = os.getloadavg()
    write_json(args.out / f"llm_throughput-{time.strftime('%Y%m%d-%H%M%S')}.json", results)
    load = results["machine"]
    print(
        f"\n{args.max_tokens} new tokens per prompt, greedy; score = 2 options, "
        f"{args.score_many} distinct pairwise prompts batched; load avg "
        f"{load['load_avg_start'][0]:.1f} -> {load['load_avg_end'][0]:.1f}; (x%) = fraction of "
        "the FLOP bound\n"
    )
    for threads, run in results["runs"].items():
        print(f"threads {threads}: matmul {run['matmul_gflops']:.1f} GFLOP/s, bound "
              f"{run['token_bound_per_s']:.0f} tok/s")  # fmt: skip
    print(table(results, args.batches))
    for threads, run in results["runs"].items():
        for name, a in run["agreement_with_float32"].items():
            print(f"threads {threads}: {name} vs ctranslate2 float32 on {a['items']} A/B prompts: "
                  f"same choice {a['same_choice']:.1%}, mean |margin diff| "
                  f"{a['mean_abs_margin_diff']:.3f} nats")  # fmt: skip
    c = results["cache"]
    print(
        f"\ncache ({c['rows']} rows): {c['bulk_lookups_per_s']:,.0f} bulk key lookups/s, "
        f"{c['single_gets_per_s']:,.0f} single gets/s, {c['keys_hashed_per_s']:,.0f} keys hashed/s"
    )


def bench_cache(n_rows: int, folder: Path) -> dict[str, float]:
    """Bulk key lookups, single gets and key hashing on a cache of ``n_rows`` rows."""
    from recfuse.llm.cache import LLMCache, OutputRow, cache_key

    db = folder / "bench_cache.sqlite"
    db.unlink(missing_ok=True)
    cache = LLMCache(db)
    keys = [cache_key("transformers", "m", "v1", {"raw": f"p{i}"}, {"i": i}) for i in range(n_rows)]
    row: tuple[Any, ...] = (
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
    )
    for start in range(0, n_rows, 1000):
        cache.put_many(OutputRow(k, *row, 0.1) for k in keys[start : start + 1000])  # type: ignore[arg-type,call-arg]
    missing = [cache_key("x", "m", "v1", {"raw": str(i)}, {}) for i in range(n_rows)]
    probe = keys[::2] + missing[::2]
    n_bulk, bulk = timed(lambda: len(cache.done_keys(probe)) * 0 + len(probe))
    n_get, gets = timed(lambda: len([cache.get(k) for k in keys[:2000]]))
    n_hash, hashing = timed(
        lambda: len([cache_key("t", "m", "v", {"raw": f"q{i}"}, {"i": i}) for i in range(20000)])
    )
    cache.close()
    return {
        "bulk_lookups_per_s": n_bulk / bulk,
        "single_gets_per_s": n_get / gets,
        "keys_hashed_per_s": n_hash / hashing,
        "rows": n_rows,
    }


if __name__ == "__main__":
    main()
