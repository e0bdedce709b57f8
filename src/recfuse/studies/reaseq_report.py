"""Tables, plot and verdicts of the ReaSeq study: quality first, then gains, then cost."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from recfuse.evaluation.significance import holm
from recfuse.runs.study import Comparison, Results, StudyFolder, Summary, Verdict, bar_plot, verdict

CLAIMS_METRIC = "NDCG@10"
# The title-control family, pre-specified: (slice, arm, reference, claim). ``know`` renders every
# item without a kept record as its bare title, so ``know > id`` alone cannot tell knowledge from
# a content feature; these read each content arm against the ``title`` arm instead. One family,
# Holm-adjusted across its three tests.
TITLE_CLAIMS = (
    ("all", "know", "title", "knowledge beyond the title (know > title)"),
    ("covered", "know", "title", "knowledge beyond the title where a record exists "
     "(know > title, covered)"),
    ("all", "text", "title", "item text beyond the title (text > title)"),
)  # fmt: skip


def quality_section(ds: str, info: dict[str, Any]) -> list[str]:
    q = info.get("knowledge_quality", {})
    out = [f"### Knowledge quality on {ds}", ""]
    if q:
        out += [
            f"- items processed {q['processed']} of {q['catalogue']}; schema-valid "
            f"{q['schema_valid']:.3f}; failures {q['failures']}",
            f"- critic removed {q['critic_removed']:.3f} of {q['values_checked']} values; "
            f"rejected {q['rejected']:.3f} of valid records",
            f"- faithfulness (values supported by the item text): all {q['faithfulness']:.3f}, "
            f"grounded fields {q['faithfulness_grounded']:.3f}, after the critic "
            f"{q['faithfulness_after']:.3f}",
            f"- coverage {q['coverage']:.3f} of the catalogue ({q['coverage_processed']:.3f} of "
            f"processed items); values per record {q['values_per_record']:.2f}; per field "
            + json.dumps({k: round(v, 3) for k, v in q["field_coverage"].items()}),
            f"- kept values that add a word the item text lacks {q['novel_after']:.3f}; kept "
            f"records with such a value {q['records_adding']:.3f}; strict JSON "
            f"{q['strict_json']:.3f}; retried {q['retried']:.3f}",
        ]
    from recfuse.studies.reaseq import INTERESTS_OFF, KNOWLEDGE_SKIPPED

    if info.get("knowledge_hash") == KNOWLEDGE_SKIPPED:
        out.append("- knowledge: not extracted (no arm of this run reads it)")
    else:
        out.append(f"- knowledge cost: {json.dumps(info.get('knowledge_cost'))}")

    if info.get("interest_hash") == INTERESTS_OFF:
        out.append("- interests: not inferred (`interests: false`)")
    else:
        out.append(
            f"- interests: coverage {info.get('interest_coverage', float('nan')):.3f}; cost "
            f"{json.dumps(info.get('interest_cost'))}"
        )
    for ex in info.get("interest_examples", [])[:3]:
        out.append(f"  - user {ex['user']}: {ex['samples']}")
    rows = info.get("channels", [])
    if rows:
        cols = list(rows[0])
        n = info.get("channel_users")
        on = f"; the {n} users with inferred interests" if n else ""
        out += ["", f"Each channel alone (full ranking, seen masked{on}):", ""]
        out += ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        for r in rows:
            out.append("| " + " | ".join(
                f"{r[c]:.4f}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |")  # fmt: skip
    return [*out, ""]


def tests_section(results: Results, ds: str, arms: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Every arm vs ``id`` (Holm across arms) overall and on each slice; nothing without id."""
    comps: dict[str, Comparison] = {}
    others = [a for a in arms if a != "id"]
    if "id" not in arms or not others:
        return [], comps
    out = [f"### Paired tests on {ds} vs id (per-user, seeds averaged, Holm across arms)", ""]
    from recfuse.studies.reaseq import sliced

    for s in ("all", "cold", "tail", "covered"):
        part = sliced(results, s)
        rows = [f.result.per_user for f in part.cells if f.cell.dataset == ds]
        if not all(len(pu) for pu in rows if pu is not None):
            out.append(f"- [{s}] no users in this slice")
            continue
        for c in part.compare_all(ds, others, "id", CLAIMS_METRIC):
            comps[f"{s}|{c.arm}"] = c
            out.append(f"- [{s}] {c.line()}")
    return [*out, ""], comps


def title_comparisons(results: Results, ds: str, arms: list[str]) -> list[tuple[str, Comparison]]:
    """`TITLE_CLAIMS` whose arms both ran: ``(claim, comparison)``, p Holm-adjusted across them."""
    from recfuse.studies.reaseq import sliced

    wanted = [c for c in TITLE_CLAIMS if c[1] in arms and c[2] in arms]
    raw = [sliced(results, s).compare(ds, arm, ref, CLAIMS_METRIC) for s, arm, ref, _ in wanted]
    adjusted = holm([c.test.t_pvalue for c in raw])
    return [
        (f"{ds}: {claim}", dataclasses.replace(c, p=p))
        for (_, _, _, claim), c, p in zip(wanted, raw, adjusted, strict=True)
    ]


def verdicts_for(
    results: Results, ds: str, arms: list[str], comps: dict[str, Any],
    reached: np.ndarray | None = None,
) -> list[Verdict]:  # fmt: skip
    """The claims of ``ds``; the interest claims on the users in ``reached`` (those with inferred
    interests; None: every user)."""
    from recfuse.studies.reaseq import among, keep_finished

    found: list[Verdict] = []
    if "cold|know" in comps:
        found.append(verdict(f"{ds}: knowledge helps sparse users (know > id, cold)",
                             comps["cold|know"]))  # fmt: skip
    if "tail|know" in comps:
        found.append(verdict(f"{ds}: knowledge helps tail items (know > id)", comps["tail|know"]))
    if "covered|know" in comps:
        found.append(verdict(f"{ds}: knowledge helps where a record exists (know > id, covered)",
                             comps["covered|know"]))  # fmt: skip
    if "all|both" in comps and "text" in arms:
        both = results.compare_pairs(ds, [("both", "text")], CLAIMS_METRIC)[0]
        found.append(verdict(f"{ds}: knowledge adds to text (both > text)", both))
    found += [verdict(claim, c) for claim, c in title_comparisons(results, ds, arms)]
    on = "" if reached is None else f", the {len(reached)} users with interests"
    if "all|id+int" in comps:
        user_input = comps["all|id+int"]
        if reached is not None:
            user_input = among(results, reached).compare(ds, "id+int", "id", CLAIMS_METRIC)
        found.append(verdict(f"{ds}: interests as user input help (id+int > id{on})",
                             user_input))  # fmt: skip
    if "id" in arms and has_column(results, ds, "Recall@20 +interest"):
        merged = keep_finished(among(results, reached), "id", "Recall@20 +interest", "id⊕interest")
        merged = keep_finished(merged, "id", "Recall@20 +history", "id⊕history")
        pairs = [("id⊕interest", "id"), ("id⊕interest", "id⊕history")]
        c1, c2 = merged.compare_pairs(ds, pairs, "Recall@20")
        found.append(verdict(f"{ds}: the interest channel adds recall (Recall@20{on})", c1))
        found.append(verdict(f"{ds}: ... more than a history-mean channel", c2))
    return found


def _measured(value: float | None) -> bool:
    return value is not None and not np.isnan(value)


def has_column(results: Results, ds: str, column: str) -> bool:
    """Whether every finished cell of ``ds`` has ``column`` (``interests: false`` drops one)."""
    cells = [f for f in results.cells if f.cell.dataset == ds]
    return bool(cells) and all(column in f.result.metrics for f in cells)


def report(study: Any, results: Results, folder: StudyFolder) -> Summary:
    from recfuse.studies.reaseq import interest_users

    config_arms = list(dict.fromkeys(f.cell.arm_name for f in results.cells))
    lines = ["# ReaSeq study", ""]
    data: dict[str, Any] = {"folder": str(folder.path)}
    verdicts: list[Verdict] = []
    plots: list[str] = []
    for ds, state in study.state.items():
        lines += quality_section(ds, state.info)
        data[ds] = state.info
    if len(results):
        cols = ["NDCG@10", "Recall@20", "NDCG@10 cold", "NDCG@10 tail", "NDCG@10 covered",
                "Recall@20 +interest", "Recall@20 +history"]  # fmt: skip
        # a column no cell measured (the covered slice of a run without knowledge) is left out
        cols = [c for c in cols if any(_measured(f.result.metrics.get(c)) for f in results.cells)]
        lines += ["### Results (test, full ranking, seen masked)", "", results.markdown(cols), ""]
        for ds in dict.fromkeys(f.cell.dataset for f in results.cells):
            section, comps = tests_section(results, ds, config_arms)
            lines += section
            against_title = title_comparisons(results, ds, config_arms)
            if against_title:
                lines += [f"### Against the title control on {ds} (Holm across these)", ""]
                lines += [f"- {claim}: {c.line()}" for claim, c in against_title] + [""]
            state = study.state.get(ds)
            reached = None if state is None else interest_users(state.interests)
            verdicts += verdicts_for(results, ds, config_arms, comps, reached)
        plot = bar_plot(results.table(["NDCG@10"]), "NDCG@10", folder.path / "reaseq.png",
                        "ReaSeq arms, SASRec backbone")  # fmt: skip
        plots.append(str(plot))
    return Summary("\n".join(lines), verdicts, plots, data)
