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
cached prefixes for CTranslate2, as its own ``stats`` count them). int8 kernels can beat a float32
bound. For CTranslate2 the score section also runs the pairwise teacher's workload (``--teacher
16 8``: 16 users x 8 `PAIRWISE_TEMPLATE` prompts, each user's 8-book history shared by that
user's prompts) in one `score_many`, with the template prefix only (the path before shared
prefixes) and with shared prefixes, alternating ``--repeats`` times, side by side (int8 only). It also reports
how often int8 and transformers make the same A/B choice as CTranslate2 float32. Cache lookups/s are measured as before. ``--build-llamacpp`` compiles
llama-cpp-python first (about 7 minutes; the CMAKE_ARGS of ../shared/ENVIRONMENT.md). Prints
markdown tables and writes JSON under runs/bench/.
"""

from __future__ import annotations

import argparse
import dataclasses
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
# Item texts as a teacher shows them (title and author), for the teacher workload.
BOOKS = [
    "Dune by Frank Herbert", "Emma by Jane Austen", "Walden by Henry David Thoreau",
    "Hamlet by William Shakespeare", "Solaris by Stanislaw Lem", "Kindred by Octavia Butler",
    "Beloved by Toni Morrison", "Ulysses by James Joyce", "Dracula by Bram Stoker",
    "Rebecca by Daphne du Maurier", "Middlemarch by George Eliot",
    "Persuasion by Jane Austen", "Frankenstein by Mary Shelley", "Ivanhoe by Walter Scott",
    "Candide by Voltaire", "The Left Hand of Darkness by Ursula K. Le Guin",
    "Hyperion by Dan Simmons", "Neuromancer by William Gibson",
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


def teacher_prompts(users: int, per_user: int, history: int = 8) -> list[Any]:
    """The pairwise teacher's workload: ``users`` x ``per_user`` prompts of the real
    `PAIRWISE_TEMPLATE`, each user's fenced history of ``history`` titles shared by all of
    that user's prompts (pairs of candidates from the other titles, both presentation orders),
    grouped by user as `LLMTeacher.records` lists them."""
    from recfuse.guidance.teachers import PAIRWISE_TEMPLATE

    out = []
    for u in range(users):
        titles = [BOOKS[(u * 5 + k) % len(BOOKS)] for k in range(len(BOOKS))]
        shown, rest = titles[:history], titles[history:]
        lines = "\n".join(f"- {t}" for t in shown)
        for n in range(per_user):
            pos, neg = rest[(n // 2) % len(rest)], rest[(n // 2 + 3) % len(rest)]
            a, b = (pos, neg) if n % 2 == 0 else (neg, pos)
            out.append(PAIRWISE_TEMPLATE.build({"history": lines, "a": a, "b": b}))
    return out


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


def bench_teacher(llm: Any, users: int, per_user: int, repeats: int = 1) -> dict[str, Any]:
    """Calls/s of one `score_many` over the teacher workload, template prefix only (as before
    shared prefixes) and with shared prefixes, alternating ``repeats`` times on the same
    backend; each timed pass starts from an empty prefix cache (its reload is not timed).
    Computed tokens per call come from ``llm.stats``."""
    items = [(p, ["A", "B"]) for p in teacher_prompts(users, per_user)]
    out: dict[str, Any] = {"users": users, "per_user": per_user, "items": len(items)}
    scores: dict[bool, list[Any]] = {}
    for shared in (False, True) * repeats:
        llm.shared_prefixes = shared
        llm.clear_prefix_cache()
        before = dataclasses.replace(llm.stats)
        started = time.perf_counter()
        scores[shared] = llm.score_many(items)
        wall = time.perf_counter() - started
        stats = llm.stats
        arm = out.setdefault("shared" if shared else "template", {"per_s": []})
        arm["per_s"].append(len(items) / wall)
        arm["prompt_tokens"] = (stats.prompt_tokens - before.prompt_tokens) / len(items)
        arm["computed_tokens"] = (stats.computed_tokens - before.computed_tokens) / len(items)
        arm["reloads"] = stats.reloads - before.reloads
        arm["cached_mb"] = stats.cached_tokens * llm.state_bytes_per_token / 2**20
    llm.shared_prefixes = True
    margins = {k: [float(x[0] - x[1]) for x in v] for k, v in scores.items()}
    out["same_choice"] = sum(
        (a > 0) == (b > 0) for a, b in zip(margins[False], margins[True], strict=True)
    ) / len(items)
    out["max_abs_margin_diff"] = max(
        abs(a - b) for a, b in zip(margins[False], margins[True], strict=True)
    )
    for name in ("template", "shared"):
        out[name]["best_per_s"] = max(out[name]["per_s"])
    print(
        f"    teacher ({users} users x {per_user}): {out['template']['best_per_s']:.1f}/s "
        f"template prefix, {out['shared']['best_per_s']:.1f}/s shared prefixes; computed "
        f"tokens/call {out['template']['computed_tokens']:.0f} -> "
        f"{out['shared']['computed_tokens']:.0f}",
        flush=True,
    )
    return out


def bench_score(
    llm: Any, n_single: int, n_many: int, users: int = 16, per_user: int = 8, repeats: int = 1
) -> dict[str, Any]:
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

    stats = getattr(llm, "stats", None)
    before = dataclasses.replace(stats) if stats is not None else None
    m, wall_many = timed(batched)
    computed = (stats.computed_tokens - before.computed_tokens) / m if before else None
    split = [llm.encode_split(p) for p in many] if hasattr(llm, "encode_split") else [([], 0)]
    tokens = sum(len(ids) for ids, _ in split) / len(split)
    shared = sum(k for _, k in split) / len(split)
    print(f"    score: {n / wall:.1f}/s one by one, {m / wall_many:.1f}/s batched", flush=True)
    # int8 only: float32 at ~2.6 calls/s would spend minutes here; its parity is a test.
    int8 = getattr(llm, "compute_type", "") == "int8" and hasattr(llm, "shared_prefixes")
    teacher = bench_teacher(llm, users, per_user, repeats) if int8 and users else None
    return {
        "teacher": teacher,
        "one_by_one_per_s": n / wall,
        "batched_per_s": m / wall_many,
        "batched_items": m,
        "prompt_tokens": tokens,
        "shared_prefix_tokens": shared,
        "computed_tokens": computed,  # per call, from the backend's own count (CTranslate2)
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
    cols += ["teacher score/s, template prefix", "teacher score/s, shared prefixes"]
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
            # The bound for the prompt tokens this backend computes: all of them for
            # transformers; CTranslate2 counts what it ran (cached prefixes left out).
            computed = s.get("computed_tokens") or s["prompt_tokens"]
            score_bound = bound / max(computed, 1)
            cells += [
                f"{s['one_by_one_per_s']:.1f}",
                f"{s['batched_per_s']:.1f} ({s['batched_per_s'] / score_bound:.0%})",
            ]
            for arm in ("template", "shared"):
                t = (s.get("teacher") or {}).get(arm)
                if t is None:
                    cells.append("—")
                    continue
                rate, tokens = t["best_per_s"], t["computed_tokens"]
                cells.append(f"{rate:.1f} ({rate * tokens / bound:.0%}, {tokens:.0f} tok)")
            lines.append(f"| {threads} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    parser.add_argument("--max-tokens", type=int, default=24)
    parser.add_argument("--score-single", type=int, default=16)
    parser.add_argument("--score-many", type=int, default=256)
    parser.add_argument(
        "--teacher",
        type=int,
        nargs=2,
        default=[16, 8],
        metavar=("USERS", "PER_USER"),
        help="pairwise-teacher workload: users x prompts sharing each user's history",
    )
    parser.add_argument("--repeats", type=int, default=1, help="teacher arm pairs per backend")
    parser.add_argument("--skip", nargs="*", default=[], help="backend families to skip")
    parser.add_argument("--cache-rows", type=int, default=20000)
    parser.add_argument("--build-llamacpp", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    return parser.parse_args()


def bench_threads(
    args: argparse.Namespace, threads: int, results: dict[str, Any], out_file: Path
) -> None:
    """Every backend at one thread count into ``results["runs"]``, saved after each backend."""
    from recfuse.atomic import write_json

    gflops = matmul_gflops(threads)
    run: dict[str, Any] = {
        "matmul_gflops": gflops,
        "token_bound_per_s": gflops * 1e9 / (2 * PARAMS),
        "backends": {},
    }
    results["runs"][str(threads)] = run
    print(f"threads {threads}: {gflops:.1f} GFLOP/s -> bound {run['token_bound_per_s']:.0f} tok/s")
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
                "score": bench_score(
                    llm, args.score_single, args.score_many, *args.teacher, args.repeats
                ),
            }
        except Exception as exc:  # report a backend that fails instead of losing the run
            r = {"error": f"{type(exc).__name__}: {str(exc).split('.')[0]}"}
        run["backends"][name] = r
        del llm
        args.out.mkdir(parents=True, exist_ok=True)
        write_json(out_file, results)  # after each backend: a timeout keeps what was done
    run["agreement_with_float32"] = agreement(run)


def report(args: argparse.Namespace, results: dict[str, Any]) -> None:
    """The markdown table and the teacher, agreement and cache lines."""
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
    print("teacher cells: calls/s (fraction of the FLOP bound, prompt tokens computed per call)")
    for threads, run in results["runs"].items():
        for name, r in run["backends"].items():
            t = r.get("score", {}).get("teacher")
            if t:
                print(f"threads {threads}: {name} teacher {t['items']} prompts "
                      f"({t['users']} users x {t['per_user']}), "
                      f"{t['template']['prompt_tokens']:.0f} tokens each: template "
                      f"{', '.join(f'{v:.1f}' for v in t['template']['per_s'])}/s, shared "
                      f"{', '.join(f'{v:.1f}' for v in t['shared']['per_s'])}/s; same choice "
                      f"{t['same_choice']:.1%}, max |margin diff| {t['max_abs_margin_diff']:.2e}; "
                      f"reloads {t['shared']['reloads']}")  # fmt: skip
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


def main() -> None:
    args = parse_args()
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
    out_file = args.out / f"llm_throughput-{time.strftime('%Y%m%d-%H%M%S')}.json"
    for threads in args.threads:
        bench_threads(args, threads, results, out_file)
    args.out.mkdir(parents=True, exist_ok=True)
    results["cache"] = bench_cache(args.cache_rows, args.out)
    results["machine"]["load_avg_end"] = os.getloadavg()
    write_json(out_file, results)
    report(args, results)


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
