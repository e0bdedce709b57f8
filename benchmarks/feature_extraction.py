"""Feature-extraction throughput per frozen model, against the CPU's own matmul rate.

For each model: items/s of `extract_features` (all layers, both poolings, length-sorted batches)
on real item texts, and the FLOP bound — the items/s the machine would reach if every
multiply-add ran at the dense fp32 matmul rate measured in this same run. The ratio says how
much of the hardware the extraction uses. FLOPs per item: 2 x (non-embedding parameters) x
tokens + attention scores and mixing (4 x layers x tokens^2 x width).

With ``--dtype bfloat16`` the matmuls run under bfloat16 autocast; the bound stays the fp32
one (so a ratio above 1 is possible), and every matrix is compared with a float32 extraction of
the same items (cosine per item, worst over layers and poolings). ``--batch-tokens`` batches by
padded tokens instead of texts. ``--compile`` also times the forward passes of
``torch.compile(model, dynamic=True)`` (inductor: kernel fusion of the element-wise work) side by
side with eager ones in the same process, after a warm-up pass over every batch whose time is
reported as the compile cost, and compares its pooled states with eager's.

    python benchmarks/feature_extraction.py [--items 256] [--threads 1] [--dataset microlens-50k]
        [--dtype bfloat16] [--batch-tokens 2048] [--compile]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def matmul_gflops(n: int = 1024, repeats: int = 10) -> float:
    """Dense fp32 matmul rate in GFLOP/s (best of ``repeats``)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def flops_per_item(model: Any, token_counts: list[int]) -> float:
    """Mean forward FLOPs per item for these token counts."""
    config = model.config
    embed = sum(p.numel() for n, p in model.named_parameters() if "embed" in n)
    dense = sum(p.numel() for p in model.parameters()) - embed
    layers, width = config.num_hidden_layers, config.hidden_size
    total = sum(2 * dense * t + 4 * layers * t * t * width for t in token_counts)
    return total / len(token_counts)


def sorted_batches(
    tokenizer: Any, texts: list[str], batch_size: int, batch_tokens: int | None
) -> tuple[list[list[list[int]]], int]:
    """The length-sorted batches `extract_features` runs, and the pad id."""
    from recfuse.features.extract import _batches, tokenize

    seqs = sorted(tokenize(tokenizer, texts, 128), key=len)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return _batches(seqs, batch_size, batch_tokens), pad_id


def forward_seconds(
    model: Any,
    tokenizer: Any,
    texts: list[str],
    batch_size: int,
    batch_tokens: int | None,
    dtype: str,
) -> float:
    """Seconds of the forward passes and pooling alone, over the same length-sorted batches as
    `extract_features` (no model load, tokenization, chunk writes or assembly)."""
    from recfuse.features.extract import pooled_hidden_states

    batches, pad_id = sorted_batches(tokenizer, texts, batch_size, batch_tokens)
    start = time.perf_counter()
    for batch in batches:
        pooled_hidden_states(model, batch, pad_id, dtype=dtype)
    return time.perf_counter() - start


def compiled_forward(
    model: Any, tokenizer: Any, texts: list[str], batch_size: int, batch_tokens: int | None
) -> dict[str, float]:
    """Seconds of a timed warm-up of the compiled model, of its forward passes after it, and of
    eager passes over the same batches right after (the side-by-side baseline), with the largest
    absolute difference between compiled and eager pooled states."""
    from recfuse.features.extract import pooled_hidden_states

    batches, pad_id = sorted_batches(tokenizer, texts, batch_size, batch_tokens)
    compiled = torch.compile(model, dynamic=True)

    def timed(net: Any) -> tuple[list[torch.Tensor], float]:
        start = time.perf_counter()
        outputs = [pooled_hidden_states(net, b, pad_id) for b in batches]
        return outputs, time.perf_counter() - start

    _, warmup = timed(compiled)
    outputs, seconds = timed(compiled)
    eager, eager_seconds = timed(model)
    diff = max(float((a - b).abs().max()) for a, b in zip(outputs, eager, strict=True))
    return {"compile_warmup_seconds": round(warmup, 1), "max_abs_diff_vs_eager": diff,
            "compiled_forward_seconds": seconds, "eager_forward_seconds": eager_seconds}  # fmt: skip


def worst_cosine(a: Any, b: Any) -> dict[str, float]:
    """Smallest and mean per-item cosine between two feature sets, over layers and poolings."""
    worst, means = 1.0, list[float]()
    for layer in range(a.n_layers):
        for pooling in ("mean", "last"):
            x, y = a.load(layer, pooling), b.load(layer, pooling)
            cos = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1) + 1e-12)
            worst, means = min(worst, float(cos.min())), [*means, float(cos.mean())]
    return {"min": round(worst, 5), "mean": round(float(np.mean(means)), 5)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="minilm,smollm2")
    parser.add_argument("--dataset", default="microlens-50k")
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 1)))
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batch-tokens", type=int, default=None)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--out", default="runs/bench")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from recfuse.data import load_dataset
    from recfuse.features.extract import extract_features, tokenize
    from recfuse.features.store import FeatureStore
    from recfuse.frozen import load_frozen

    texts = load_dataset(args.dataset).item_texts()[: args.items]
    rows = []
    for name in args.models.split(","):
        tokenizer, model, _ = load_frozen(name)  # load outside the timed part
        tokens = [len(s) for s in tokenize(tokenizer, texts, 128)]
        gflops = matmul_gflops()
        with tempfile.TemporaryDirectory() as tmp:
            run = dict(store=FeatureStore(tmp), progress=False, batch_size=args.batch_size)
            start = time.perf_counter()
            fset = extract_features(
                texts, name, "bench", dtype=args.dtype, batch_tokens=args.batch_tokens, **run
            )
            seconds = time.perf_counter() - start
            cosine = None
            if args.dtype != "float32":
                reference = extract_features(texts, name, "bench", **run)
                cosine = worst_cosine(fset, reference)
        forward = forward_seconds(
            model, tokenizer, texts, args.batch_size, args.batch_tokens, args.dtype
        )
        per_item = flops_per_item(model, tokens)
        measured = len(texts) / seconds
        bound = gflops * 1e9 / per_item
        compiled: dict[str, Any] = {}
        if args.compile:
            compiled = compiled_forward(model, tokenizer, texts, args.batch_size, args.batch_tokens)
            seconds_c = compiled.pop("compiled_forward_seconds")
            eager_again = compiled.pop("eager_forward_seconds")
            compiled |= {
                "compiled_forward_items_per_s": round(len(texts) / seconds_c, 2),
                "compiled_forward_ratio_to_bound": round(len(texts) / seconds_c / bound, 3),
                "eager_forward_items_per_s_after": round(len(texts) / eager_again, 2),
                "compiled_speedup_vs_eager": round(min(forward, eager_again) / seconds_c, 3),
            }
        rows.append(
            {
                "model": name,
                "items": len(texts),
                "mean_tokens": sum(tokens) / len(tokens),
                "seconds": round(seconds, 2),
                "items_per_s": round(measured, 2),
                "matmul_gflops": round(gflops, 1),
                "gflop_per_item": round(per_item / 1e9, 3),
                "flop_bound_items_per_s": round(bound, 2),
                "ratio_to_bound": round(measured / bound, 3),
                # the forward passes alone: what the kernels reach, without the fixed costs
                # (model load, tokenization, writes) that a small --items run inflates
                "forward_items_per_s": round(len(texts) / forward, 2),
                "forward_ratio_to_bound": round(len(texts) / forward / bound, 3),
                "threads": args.threads,
                "dtype": args.dtype,
                "batch_size": args.batch_size,
                "batch_tokens": args.batch_tokens,
                "attn_implementation": getattr(model.config, "_attn_implementation", None),
                "min_cosine_vs_float32": cosine,
            }
            | compiled
        )
        print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from recfuse.atomic import write_json

    suffix = "_compile" if args.compile else ""
    write_json(out / f"feature_extraction_{args.dtype}{suffix}.json", rows)
    print(f"threads {args.threads}, load average after: {os.getloadavg()}")
    print(
        "| model | items | mean tokens | items/s | FLOP bound items/s | ratio "
        "| forward items/s | forward ratio | matmul GFLOP/s |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['items']} | {r['mean_tokens']:.1f} | {r['items_per_s']} | "
            f"{r['flop_bound_items_per_s']} | {r['ratio_to_bound']} | "
            f"{r['forward_items_per_s']} | {r['forward_ratio_to_bound']} | {r['matmul_gflops']} |"
        )


if __name__ == "__main__":
    main()
