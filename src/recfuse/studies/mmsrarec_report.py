"""The MMSRARec study's summary: result tables, reward per round, examples, verdicts, plots."""

from __future__ import annotations

import json
from typing import Any

from recfuse.runs.study import (
    Comparison,
    Results,
    StudyFolder,
    Summary,
    Verdict,
    bar_plot,
    span,
    verdict,
)
from recfuse.studies.mmsrarec import LM_ARMS, S100, SASREC_ARMS, Prepared

FULL_METRICS = ["NDCG@10", "Recall@10", "NDCG@20"]
SAMPLED_METRICS = [S100 + "NDCG@10", S100 + "Hit@10", S100 + "MRR"]


def claims(results: Results, ds: str) -> list[Verdict]:
    """Paired tests over users (Holm within each family), a verdict per claim."""
    present = {f.cell.arm_name for f in results.cells if f.cell.dataset == ds}
    out: list[Verdict] = []
    fusion = [(a, r) for a, r in (("sasrec-kw", "sasrec-id"), ("sasrec-kw", "sasrec-text"))]
    fusion = [p for p in fusion if set(p) <= present]
    for cmp in results.compare_pairs(ds, fusion, "NDCG@10") if fusion else []:
        out.append(verdict(f"{ds}: SASRec {cmp.arm} > {cmp.reference} (full NDCG@10)", cmp))
    lm = [("lm-kw-collab", "lm-kw"), ("lm-kw-collab", "sasrec-id")]
    lm = [p for p in lm if set(p) <= present]
    for cmp in results.compare_pairs(ds, lm, S100 + "NDCG@10") if lm else []:
        out.append(verdict(f"{ds}: {cmp.arm} > {cmp.reference} (sampled-100 NDCG@10)", cmp))
    return out


def reward_table(report: dict[str, Any]) -> str:
    """Reward distribution, keyword length and reconstruction rank per round."""
    lines = [
        "| round | items | valid answers | copied from the text | reward all (mean ± std) | best-of-n reward (mean, "
        "median) | best-of-n words | best-of-n recon rank (median) | tokens/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label in ("round 0 (all items)", "round 0 (held-out)", "round 1 (held-out)"):
        s = report.get(label)
        if not s or not s["reward (best-of-n)"].get("n"):
            continue
        allc, best = s["reward (all candidates)"], s["reward (best-of-n)"]
        lines.append(
            f"| {label} | {s['items']} | {s['valid answers']:.3f} | {s['extractive echoes']:.3f} "
            f"| {allc['mean']:.3f} ± {allc['std']:.3f} | {best['mean']:.3f}, {best['median']:.3f} "
            f"| {s['words (best-of-n)']['mean']:.1f} | {s['recon rank (best-of-n)']['median']:.0f} "
            f"| {s['cost']['tokens/s']:.0f} |"
        )
    paired = report.get("round 1 vs 0 (best-of-n reward)")
    if paired and "p" in paired:
        lines.append(
            f"\nRound 1 − round 0, best-of-n reward per held-out item: {paired['diff']:+.4f} "
            f"(paired t, p = {paired['p']:.3g}, {paired['items']} items; one LoRA run)"
        )
    return "\n".join(lines)


def budget_table(results: Results) -> str:
    """What each arm trained: seeds, SASRec epochs (early stopping), LM steps, seconds."""
    frame = results.frame()
    lines = ["| arm | seeds | epochs | LM steps | train s |", "|---|---|---|---|---|"]
    for arm, g in frame.groupby("arm", sort=False):
        epochs, steps = g.get("epochs_run", []), g.get("steps", [])
        seconds = g.get("train_seconds", [])
        lines.append(f"| {arm} | {len(g)} | {span(epochs)} | {span(steps)} | {span(seconds)} |")
    return "\n".join(lines)


def _cell(text: str | None, limit: int = 90) -> str:
    if text is None:
        return "–"
    return text.replace("|", "/").replace("\n", " ")[:limit]


def examples_table(folder: StudyFolder, ds: str) -> str:
    """The sampled held-out items: text, best keywords (reward) before and after the round."""
    path = folder.path / f"examples-{ds}.json"
    if not path.is_file():
        return ""
    lines = [
        f"\n### {ds}: sampled held-out items, best-of-n before → after one round\n",
        "| item | text | before (reward) | after (reward) |",
        "|---|---|---|---|",
    ]
    for row in json.loads(path.read_text()):
        cells = []
        for label in ("before", "after"):
            c = row[label]
            cells.append("–" if c is None else f"{_cell(c['keywords'])} ({c['reward']:.2f})")
        lines.append(f"| {row['item']} | {_cell(row['text'])} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def summarize(results: Results, folder: StudyFolder, prepared: dict[str, Prepared]) -> Summary:
    parts, verdicts, plots = [], [], []
    data: dict[str, Any] = {}
    for ds, state in prepared.items():
        parts.append(f"## {ds}\n\n### Keyword summaries: reward per round\n")
        parts.append(reward_table(state.report))
        if "policy training" in state.report:
            parts.append(f"\nPolicy training: `{json.dumps(state.report['policy training'])}`")
        parts.append(f"\nItems falling back to their title: {state.report['fallback items']}\n")
        parts.append(examples_table(folder, ds))
        data[ds] = state.report
        mine = Results([f for f in results.cells if f.cell.dataset == ds])
        if len(mine):
            parts.append("\n### Recommenders (full ranking: all test users for SASRec, the "
                         f"{len(state.users)}-user sample for the LM; sampled-100 on that sample)\n")  # fmt: skip
            parts.append(mine.markdown(FULL_METRICS + SAMPLED_METRICS))
            parts.append("\nTraining budgets (SASRec: early stopping on validation NDCG@10):\n")
            parts.append(budget_table(mine))
            verdicts += claims(mine, ds)
            table = mine.table(["NDCG@10", S100 + "NDCG@10"])
            full = "MMSRARec, full ranking (LM arms: the user sample only)"
            sampled = f"MMSRARec, sampled-100 on the {len(state.users)}-user sample"
            plots += [
                str(bar_plot(table, "NDCG@10", folder.path / f"ndcg-{ds}.png", full)),
                str(bar_plot(table, S100 + "NDCG@10", folder.path / f"s100-{ds}.png", sampled)),
            ]
    if not verdicts:  # the study folder's results.md lists the verdicts after this text
        parts.append("\nNo verdicts: no recommender cells ran.")
    markdown = "\n".join(parts)
    print(markdown)
    return Summary(markdown, verdicts, plots, data)


__all__ = ["LM_ARMS", "SASREC_ARMS", "Comparison", "claims", "reward_table", "summarize"]
