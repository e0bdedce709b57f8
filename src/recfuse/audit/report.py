"""Turn per-seed audit records into confidence intervals, a verdict and a recommended split."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from recfuse.atomic import write_json, write_text
from recfuse.audit.probes import main_metric_name
from recfuse.audit.table import AuditTable

# Share of the baseline's skill (over the context-only model) that the group-only model reaches.
LEVELS = ((0.8, "severe"), (0.5, "strong"), (0.2, "moderate"), (-math.inf, "weak"))
# The shuffled-label control passes when its top-k exceeds chance by at most this much.
CONTROL_TOLERANCE = 0.02


def mean_ci(values: list[float], level: float = 0.95) -> dict[str, float]:
    """Mean and Student-t confidence interval over seeds (NaNs dropped)."""
    arr = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(arr) == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    mean = float(arr.mean())
    if len(arr) < 2:
        return {"mean": mean, "lo": float("nan"), "hi": float("nan"), "n": 1}
    half = float(stats.t.ppf(0.5 + level / 2, len(arr) - 1) * arr.std(ddof=1) / math.sqrt(len(arr)))
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": int(len(arr))}


def _get(record: dict[str, Any], path: str) -> float:
    node: Any = record
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return float("nan")
        node = node[key]
    return float(node)


def _ratio(num: float, den: float) -> float:
    return num / den if den > 1e-9 else float("nan")


def per_seed_derived(record: dict[str, Any]) -> dict[str, float]:
    """Derived quantities of one seed (skills are gains over the context-only model):

    - ``explained_share``: group-only skill / baseline skill, random split (the paper's probe 2);
    - ``identity_share``: the part of the group-only skill that vanishes when test groups are
      unseen (group-disjoint split), over the baseline skill. Group probabilities are a function
      of the features, so they can carry content as well as identity; only what is lost on
      unseen groups is attributable to identity;
    - ``split_gap`` / ``relative_split_gap``: baseline lost from random to group-disjoint;
    - ``control_margin_top5``: shuffled-label probe top-5 minus its chance level.
    """
    null = _get(record, "splits.random.null.main")
    base = _get(record, "splits.random.baseline.main")
    group_only = _get(record, "splits.random.group_only.main") - null
    unseen = _get(record, "splits.group_disjoint.group_only.main") - _get(
        record, "splits.group_disjoint.null.main"
    )
    gap = base - _get(record, "splits.group_disjoint.baseline.main")
    out = {
        "explained_share": _ratio(group_only, base - null),
        "identity_share": _ratio(group_only - unseen, base - null),
        "split_gap": gap,
        "relative_split_gap": _ratio(gap, base - null),
        "control_margin_top5": _get(record, "splits.random.shuffled_control.top5")
        - _get(record, "splits.random.shuffled_control.chance_top5"),
        "who_lift_top5": _ratio(
            _get(record, "splits.random.who_made_it.top5"),
            _get(record, "splits.random.who_made_it.chance_top5"),
        ),
    }
    for structure in ("scaffold", "similarity"):
        if structure in record.get("splits", {}):
            s_null = _get(record, f"splits.{structure}.null.main")
            out[f"explained_share_{structure}"] = _ratio(
                _get(record, f"splits.{structure}.group_only.main") - s_null,
                _get(record, f"splits.{structure}.baseline.main") - s_null,
            )
    return out


def summarize(records: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and 95% CI of every numeric leaf (``split.probe.metric``) and derived quantity."""
    keys: set[str] = set()
    for rec in records:
        for split, probes in rec["splits"].items():
            for probe, metrics in probes.items():
                if isinstance(metrics, dict):
                    keys.update(f"{split}.{probe}.{m}" for m in metrics)
    out = {k: mean_ci([_get(r, f"splits.{k}") for r in records]) for k in sorted(keys)}
    derived = [per_seed_derived(r) for r in records]
    for key in derived[0] if derived else []:
        out[f"derived.{key}"] = mean_ci([d.get(key, float("nan")) for d in derived])
    return out


def _mean(summary: dict[str, dict[str, float]], key: str) -> float:
    return summary.get(key, {}).get("mean", float("nan"))


def verdict(summary: dict[str, dict[str, float]]) -> dict[str, Any]:
    """How much of the baseline's skill the group alone explains, and which split to use.

    The level is graded on ``evidence = min(explained share, max(identity share, relative split
    gap))``: the group-only model must reach the baseline's skill (probe 2) AND that skill must
    depend on having seen the group (it vanishes, or the baseline drops, on unseen groups).
    A high explained share that survives on unseen groups is content, not a Clever Hans.
    """
    share = _mean(summary, "derived.explained_share")
    identity = _mean(summary, "derived.identity_share")
    gap = _mean(summary, "derived.relative_split_gap")
    margin = _mean(summary, "derived.control_margin_top5")
    control_passed = bool(not math.isnan(margin) and margin <= CONTROL_TOLERANCE)
    dependence = (
        np.nanmax([identity, gap])
        if not (math.isnan(identity) and math.isnan(gap))
        else float("nan")
    )
    evidence = (
        min(share, dependence) if not (math.isnan(share) or math.isnan(dependence)) else share
    )
    if math.isnan(share):
        level = "undetermined"
        text = "the baseline has no skill over the context-only model, so no share can be computed"
    else:
        level = next(name for bound, name in LEVELS if evidence >= bound)
        text = (
            f"{level}: a model that sees only the context and the predicted group reaches "
            f"{share:.0%} of the baseline's skill over the context-only model; "
            f"{identity:.0%} of the baseline's skill is lost by that model on unseen groups and "
            f"the baseline itself loses {gap:.0%} on a group-disjoint split"
        )
    leaky = (not math.isnan(evidence) and evidence >= 0.2) or (not math.isnan(gap) and gap >= 0.1)
    recommended = "group_disjoint" if leaky else "random"
    reason = (
        "the model's skill depends on having seen the item's group; report results on the "
        "group-disjoint split"
        if leaky
        else "the score holds on unseen groups, so a random split does not flatter the model"
    )
    notes = []
    if not math.isnan(share) and share >= 0.5 and level == "weak":
        notes.append(
            "the group-only model is strong but keeps its skill on unseen groups: the predicted "
            "group probabilities carry content (similar items), not only identity"
        )
    for structure in ("scaffold", "similarity"):
        top5 = _mean(summary, f"{structure}.who_made_it.top5")
        chance = _mean(summary, f"{structure}.who_made_it.chance_top5")
        if top5 > 2 * chance:
            notes.append(
                f"a {structure} split does not hide the group: top-5 {top5:.1%} vs chance "
                f"{chance:.1%}; where the group matters it is no substitute for a group-disjoint split"
            )
    if not control_passed:
        notes.append(
            "the shuffled-label control did NOT fall to chance: the probe numbers are not trustworthy"
        )
    return {
        "level": level,
        "evidence": evidence,
        "explained_share": share,
        "identity_share": identity,
        "relative_split_gap": gap,
        "control_passed": control_passed,
        "recommended_split": recommended,
        "summary": text,
        "reason": reason,
        "notes": notes,
    }


def _fmt(cell: dict[str, float] | None, pct: bool = False) -> str:
    if not cell or cell["n"] == 0 or math.isnan(cell["mean"]):
        return "–"
    scale, unit = (100.0, "%") if pct else (1.0, "")
    digits = 1 if pct else 3
    mean = f"{cell['mean'] * scale:.{digits}f}{unit}"
    if math.isnan(cell["lo"]):
        return mean
    return f"{mean} ± {(cell['hi'] - cell['mean']) * scale:.{digits}f}"


SPLIT_ORDER = ("random", "scaffold", "similarity", "group_disjoint")


def split_order(records: list[dict[str, Any]]) -> list[str]:
    """The splits present in the records, random first and group-disjoint last."""
    present = set(records[0]["splits"]) if records else set()
    return [s for s in SPLIT_ORDER if s in present] + sorted(present - set(SPLIT_ORDER))


def build_report(
    table: AuditTable, records: list[dict[str, Any]], config: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """Markdown text and a JSON-able dict with every probe's mean ± 95% CI and the verdict."""
    summary = summarize(records)
    judged = verdict(summary)
    metric = main_metric_name(table.task, table.n_classes)
    splits = split_order(records)
    lines = [
        f"# Clever-Hans audit: {table.name}",
        "",
        f"group `{table.columns.get('group')}`, target `{table.columns.get('target')}` "
        f"({table.task}, main metric {metric}), context `{table.columns.get('context') or '–'}`, "
        f"features `{table.feature_kind}`; {table.n_rows} rows, {len(records)} seeds "
        f"({', '.join(str(r['seed']) for r in records)}); mean ± 95% t-interval half-width.",
        "",
    ]
    lines += [f"- {note}" for note in table.notes]
    lines += [
        "",
        "## Verdict",
        "",
        f"**{judged['summary']}.** Recommended split: **{judged['recommended_split']}** "
        f"({judged['reason']}). Shuffled-label control: "
        f"{'passed' if judged['control_passed'] else 'FAILED'}.",
        "",
    ]
    lines += [f"- {note}" for note in judged["notes"]]
    lines += [
        "",
        f"## Probes 2 and 3: {metric} on the test part",
        "",
        "| split | baseline (features) | group-only (context + group probs) | context only |",
        "|---|---|---|---|",
    ]
    for split in splits:
        lines.append(
            f"| {split} | {_fmt(summary.get(f'{split}.baseline.main'))} | "
            f"{_fmt(summary.get(f'{split}.group_only.main'))} | {_fmt(summary.get(f'{split}.null.main'))} |"
        )
    lines += [
        "",
        f"Explained share (random split): {_fmt(summary.get('derived.explained_share'))}; "
        f"identity share (lost on unseen groups): {_fmt(summary.get('derived.identity_share'))}; "
        f"split gap (random − group-disjoint baseline): {_fmt(summary.get('derived.split_gap'))} "
        f"({_fmt(summary.get('derived.relative_split_gap'))} of the baseline's skill; above 1 "
        "when the baseline falls below the random split's context-only model).",
    ]
    for structure in ("scaffold", "similarity"):
        if f"derived.explained_share_{structure}" in summary:
            lines += [
                "",
                f"Explained share on the {structure} split: "
                f"{_fmt(summary.get(f'derived.explained_share_{structure}'))}.",
            ]
    lines += [
        "",
        "## Probe 1: who made it (test rows whose group was seen in training)",
        "",
        "Chance: the better of two feature-blind guesses, the k most frequent training groups or "
        "k groups at random.",
        "",
        "| split | top-1 | top-5 | chance top-1 | chance top-5 | groups |",
        "|---|---|---|---|---|---|",
    ]
    for split, probe in [(s, "who_made_it") for s in splits] + [
        ("random, shuffled labels", "shuffled_control")
    ]:
        key = "random" if probe == "shuffled_control" else split
        if f"{key}.{probe}.top1" not in summary:
            continue
        cells = [
            summary.get(f"{key}.{probe}.{m}")
            for m in ("top1", "top5", "chance_top1", "chance_top5")
        ]
        groups = summary.get(f"{key}.{probe}.n_groups", {}).get("mean", float("nan"))
        lines.append(
            f"| {split} | " + " | ".join(_fmt(c, pct=True) for c in cells) + f" | {groups:.0f} |"
        )
    lines.append("")
    payload = {
        "dataset": table.name,
        "columns": table.columns,
        "task": table.task,
        "main_metric": metric,
        "features": table.feature_kind,
        "n_rows": table.n_rows,
        "notes": table.notes,
        "config": config,
        "seeds": [r["seed"] for r in records],
        "summary": summary,
        "verdict": judged,
        "records": records,
    }
    return "\n".join(lines), payload


def write_report(folder: str | Path, markdown: str, payload: dict[str, Any]) -> None:
    """``report.md`` and ``report.json`` in ``folder``, each written atomically."""
    folder = Path(folder)
    write_text(folder / "report.md", markdown)
    write_json(folder / "report.json", payload)
