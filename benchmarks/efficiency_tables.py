"""Markdown tables for docs/results/efficiency.md from the JSON files in benchmarks/results/.

python benchmarks/efficiency_tables.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from recfuse.evaluation.significance import paired_arrays

RESULTS = Path(__file__).resolve().parent / "results"


def _load(pattern: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob(pattern))]


def ease_table() -> str:
    lines = [
        "| dataset | users × items | mean history | way | s / 1,024 users | s all users | "
        "bit-identical to gather |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in _load("ease_scoring*.json"):
        for r in f["results"]:
            for way in ("gather", "scipy_csr", "torch_sparse", "dense"):
                w = r[way]
                exact = "yes" if w["exact vs gather"] else f"no (max diff {w['max abs diff']:.1e})"
                lines.append(
                    f"| {r['dataset']} | {r['n_users']:,} × {r['n_items']:,} | "
                    f"{r['mean history']:.1f} | {way} | {w['s per 1024 users']:.3f} | "
                    f"{w['s all users']:.2f} | "
                    f"{exact} |"
                )
        lines.append(
            f"\n(torch threads {f['meta']['torch threads']}, load after {f['meta']['load after']})"
        )
    return "\n".join(lines)


def arm(pattern: str) -> list[dict]:  # type: ignore[type-arg]
    runs = [r for f in _load(pattern) for r in f["runs"]]
    return sorted(runs, key=lambda r: r["seed"])


def sasrec_table(arms: dict[str, str]) -> str:
    lines = [
        "| arm | seeds | test NDCG@10 (mean ± std) | per seed | epochs (best) | targets/epoch | "
        "CPU s / epoch | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, pattern in arms.items():
        runs = arm(pattern)
        if not runs:
            lines.append(f"| {name} | 0 | not run | | | | | |")
            continue
        ndcg = [r["test NDCG@10"] for r in runs]
        std = np.std(ndcg, ddof=1) if len(ndcg) > 1 else float("nan")
        seeds = ",".join(str(r["seed"]) for r in runs)
        per_seed = " / ".join(f"{v:.4f}" for v in ndcg)
        epochs = " / ".join(f"{r['epochs']} ({r['best epoch']})" for r in runs)
        cpu = " / ".join(f"{r['cpu s'] / r['epochs']:.1f}" for r in runs if "cpu s" in r)
        wall = " / ".join(f"{r['train s']:.0f}" for r in runs)
        lines.append(
            f"| {name} | {seeds} | {np.mean(ndcg):.4f} ± {std:.4f} | {per_seed} | {epochs} | "
            f"{runs[0]['targets per epoch']:,} | {cpu or '–'} | {wall} |"
        )
    return "\n".join(lines)


def paired(a_pattern: str, b_pattern: str) -> str:
    """Per seed, then over the seeds' per-user means: paired tests on test NDCG@10 (b - a)."""
    a = {r["seed"]: r for r in arm(a_pattern)}
    b = {r["seed"]: r for r in arm(b_pattern)}
    out, xs, ys = [], [], []
    for seed in sorted(set(a) & set(b)):
        x, y = a[seed].get("per-user NDCG@10"), b[seed].get("per-user NDCG@10")
        if not x or not y:
            continue
        test = paired_arrays(np.asarray(y), np.asarray(x))
        out.append(f"seed {seed}: {test.diff:+.4f} (t p={test.t_pvalue:.2g})")
        xs.append(x)
        ys.append(y)
    if len(xs) > 1:  # each user's NDCG@10 averaged over the seeds both arms ran
        test = paired_arrays(np.mean(ys, axis=0), np.mean(xs, axis=0))
        out.append(
            f"{len(xs)} seeds pooled per user: {test.diff:+.4f} (t p={test.t_pvalue:.2g}, "
            f"Wilcoxon p={test.wilcoxon_pvalue:.2g}, n={test.n_users})"
        )
    return "; ".join(out) or "no seed with per-user results in both arms"


def main() -> None:
    print(ease_table(), "\n")
    arms = {
        "before the mask, last window (main 6c894ce)": "sasrec_ml100k_before_mask_s*.json",
        "masked, last window": "sasrec_ml100k_masked_last_s*.json",
        "masked, sliding windows (stride 50)": "sasrec_ml100k_masked_sliding_s*.json",
        "GRU4Rec, last window": "gru4rec_ml100k_last_s*.json",
        "GRU4Rec, sliding windows": "gru4rec_ml100k_sliding_s*.json",
    }
    print(sasrec_table(arms), "\n")
    print(
        "mask:",
        paired(arms["before the mask, last window (main 6c894ce)"], arms["masked, last window"]),
    )
    print(
        "sliding:", paired(arms["masked, last window"], arms["masked, sliding windows (stride 50)"])
    )
    print(
        "GRU4Rec sliding:", paired(arms["GRU4Rec, last window"], arms["GRU4Rec, sliding windows"])
    )
    micro = {
        "MicroLens-50k sample (5,000 users), last window": "sasrec_microlens5000_last_s*.json",
        "MicroLens-50k sample (5,000 users), sliding windows": "sasrec_microlens5000_sliding_s*.json",
    }
    print("\n" + sasrec_table(micro), "\n")
    print("MicroLens sliding:", paired(*micro.values()))
    for f in _load("threads_quiet.json"):
        print("\n| threads | concurrent jobs | s / epoch | epochs/s, all jobs | load |")
        print("|---|---|---|---|---|")
        for r in f["rows"]:
            print(
                f"| {r['threads']} | {r['concurrent jobs']} | {r['s per epoch']:.2f} | "
                f"{r['epochs per s, all jobs']:.3f} | {r['load after']:.1f} |"
            )
    for name in ("fe_before", "fe_after"):
        for p in sorted((RESULTS / name).glob("*.json")):
            print(name, p.read_text())


if __name__ == "__main__":
    main()
