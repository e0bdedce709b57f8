"""Study: the Clever-Hans audit on ChEMBL assays, Goodreads books and Amazon items, over seeds.

Writes into one run folder (default ``runs/study-leakage``; a rerun resumes finished seeds):
``<case>/`` (each audit's config, per-seed records and report), ``results.md``,
``results.json`` and ``leakage.png``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from recfuse.atomic import atomic_path, write_json, write_text
from recfuse.evaluation.leakage.report import split_order


@dataclass(frozen=True)
class Case:
    """One audit question: dataset, group, target, context and features."""

    key: str
    dataset: str
    group: str
    target: str
    context: str | None
    features: str = "auto"
    subsample: bool = False  # cap the number of groups at --chembl-max-groups


CASES = {
    "chembl": Case(
        "chembl", "chembl-assays", "assay_chembl_id", "pchembl_value", "target", subsample=True
    ),
    "goodreads": Case("goodreads", "goodreads-books", "author", "genre", None),
    "goodreads-minilm": Case(
        "goodreads-minilm", "goodreads-books", "author", "genre", None, "minilm"
    ),
    "amazon": Case("amazon", "amazon-scientific", "brand", "popularity", None),
}

# The paper's reported numbers, for the comparison table (not used in any computation).
PAPER = {
    "who_top5": "≈60% top-5 over 1,815 authors (scaffold split)",
    "group_only": "activity model on protein + predicted author probabilities ≈ structure baseline",
}


def _cell(summary: dict[str, Any], key: str, pct: bool = False) -> str:
    cell = summary.get(key)
    if not cell or cell["n"] == 0 or math.isnan(cell["mean"]):
        return "–"
    scale = 100.0 if pct else 1.0
    digits = 1 if pct else 3
    mean = cell["mean"] * scale
    if math.isnan(cell["lo"]):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{cell['lo'] * scale:.{digits}f}, {cell['hi'] * scale:.{digits}f}]"


def results_markdown(payloads: dict[str, dict[str, Any]]) -> str:
    """One table across cases: every probe's mean [95% CI] and the verdict."""
    lines = [
        "| case | metric | split | baseline | group-only | context only | who top-1 % | who top-5 % | chance top-5 % | shuffled top-5 % |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, payload in payloads.items():
        s = payload["summary"]
        for split in split_order(payload["records"]):
            lines.append(
                f"| {key} | {payload['main_metric']} | {split} | {_cell(s, f'{split}.baseline.main')} | "
                f"{_cell(s, f'{split}.group_only.main')} | {_cell(s, f'{split}.null.main')} | "
                f"{_cell(s, f'{split}.who_made_it.top1', True)} | {_cell(s, f'{split}.who_made_it.top5', True)} | "
                f"{_cell(s, f'{split}.who_made_it.chance_top5', True)} | "
                f"{_cell(s, f'{split}.shuffled_control.top5', True)} |"
            )
    lines += [
        "",
        "| case | rows | groups (probe classes) | explained share | identity share | relative split gap | verdict | recommended split | control |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for key, payload in payloads.items():
        s, v = payload["summary"], payload["verdict"]
        lines.append(
            f"| {key} | {payload['n_rows']} | {payload['records'][0]['n_group_classes']} | "
            f"{_cell(s, 'derived.explained_share')} | {_cell(s, 'derived.identity_share')} | "
            f"{_cell(s, 'derived.relative_split_gap')} | {v['level']} | {v['recommended_split']} | "
            f"{'passed' if v['control_passed'] else 'FAILED'} |"
        )
    return "\n".join(lines) + "\n"


def plot(payloads: dict[str, dict[str, Any]], path: Path) -> None:
    """Per case: the main metric of baseline / group-only / context-only per split (top row) and
    who-made-it top-5 against chance and the shuffled control (bottom row), with 95% CIs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    keys = list(payloads)
    fig, axes = plt.subplots(2, len(keys), figsize=(4.2 * len(keys), 7), squeeze=False)
    for col, key in enumerate(keys):
        s = payloads[key]["summary"]
        splits = split_order(payloads[key]["records"])
        ax = axes[0, col]
        width = 0.27
        for j, (probe, label) in enumerate(
            [("baseline", "baseline"), ("group_only", "group-only"), ("null", "context only")]
        ):
            cells = [
                s.get(f"{sp}.{probe}.main", {"mean": np.nan, "lo": np.nan, "hi": np.nan})
                for sp in splits
            ]
            means = np.array([c["mean"] for c in cells])
            err = np.array([c["hi"] - c["mean"] for c in cells])
            ax.bar(
                np.arange(len(splits)) + (j - 1) * width,
                means,
                width,
                yerr=err,
                label=label,
                capsize=3,
            )
        ax.set_xticks(np.arange(len(splits)), splits, fontsize=8)
        ax.set_title(f"{key}: {payloads[key]['main_metric']}")
        ax.legend(fontsize=7)
        ax = axes[1, col]
        bars = [
            (f"{sp} top-5", s.get(f"{sp}.who_made_it.top5"))
            for sp in splits
            if f"{sp}.who_made_it.top5" in s
        ] + [
            ("chance top-5", s.get("random.who_made_it.chance_top5")),
            ("shuffled top-5", s.get("random.shuffled_control.top5")),
        ]
        bars = [(n, c) for n, c in bars if c]
        ax.bar(
            range(len(bars)),
            [c["mean"] * 100 for _, c in bars],
            yerr=[(c["hi"] - c["mean"]) * 100 for _, c in bars],
            capsize=3,
            color=["tab:red"] * (len(bars) - 2) + ["tab:gray", "tab:gray"],
        )
        ax.set_xticks(range(len(bars)), [n for n, _ in bars], fontsize=7, rotation=20)
        ax.set_ylabel("who made it, % of test rows")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main(
    out: Path = typer.Option(
        Path("runs/study-leakage"), help="Run folder (resumes finished seeds)."
    ),
    seeds: int = typer.Option(5, min=1, help="Seeds 0..N-1 per case."),
    cases: str = typer.Option(
        "chembl,goodreads,amazon", help=f"Comma-separated: {', '.join(CASES)}."
    ),
    chembl_max_groups: int = typer.Option(300, help="Assays kept from ChEMBL (random, seed 0)."),
    probe: str = typer.Option("knn", help="Group probe: knn or mlp."),
    threads: int = typer.Option(1, min=1, help="torch threads."),
) -> None:
    """Run the leakage audit for each case over seeds; write results.md, results.json, leakage.png."""
    import torch

    from recfuse.errors import ConfigError
    from recfuse.evaluation.leakage.audit import AuditConfig, run_audit
    from recfuse.evaluation.leakage.cases import load_audit_table
    from recfuse.evaluation.leakage.provenance import write_run_config
    from recfuse.evaluation.leakage.report import build_report, write_report

    torch.set_num_threads(threads)
    chosen = [c.strip() for c in cases.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in CASES]
    if unknown:
        raise ConfigError(f"--cases: unknown {unknown}; known: {', '.join(CASES)}")
    config = AuditConfig(seeds=tuple(range(seeds)), probe=probe)
    write_run_config(
        out,
        {
            "study": "leakage",
            "cases": {c: vars(CASES[c]) for c in chosen},
            "chembl_max_groups": chembl_max_groups,
            "audit": config.to_json(),
            "threads": threads,
        },
    )
    payloads: dict[str, dict[str, Any]] = {}
    for key in chosen:
        case = CASES[key]
        table = load_audit_table(
            case.dataset,
            case.group,
            case.target,
            case.context,
            features=case.features,
            max_groups=chembl_max_groups if case.subsample else None,
        )
        folder = out / key
        write_run_config(
            folder, {"case": vars(case), "audit": config.to_json(), "notes": table.notes}
        )
        records = run_audit(table, config, folder)
        markdown, payload = build_report(table, records, config.to_json())
        write_report(folder, markdown, payload)
        payloads[key] = payload
        typer.echo(f"{key}: {payload['verdict']['summary']}")
    write_text(out / "results.md", results_markdown(payloads))
    write_json(
        out / "results.json",
        {
            k: {x: p[x] for x in ("summary", "verdict", "notes", "n_rows")}
            for k, p in payloads.items()
        },
    )
    plot(payloads, out / "leakage.png")
    typer.echo(f"written: {out / 'results.md'}, {out / 'leakage.png'}")


if __name__ == "__main__":
    typer.run(main)
