"""Study: the Clever-Hans audit on ChEMBL assays, Goodreads books and Amazon items, over seeds.

One cell of the study skeleton per (case, seed): every probe of the audit for that seed. The
study folder (a rerun resumes finished cells; a changed setting recomputes) holds ``<case>/``
(each audit's report and the seeds' splits), ``results.md``, ``results.json`` and
``leakage.png``. Verdicts follow the 3-seed rule: "who made it beats chance" holds only with
≥ 3 seeds and a significant paired t-test over seeds (Holm-corrected across cases).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from recfuse.atomic import atomic_path
from recfuse.audit.report import split_order
from recfuse.evaluation.significance import holm, paired_arrays
from recfuse.runs.study import (
    Cell,
    CellContext,
    CellResult,
    Comparison,
    Results,
    Study,
    StudyConfig,
    StudyFolder,
    Summary,
    Verdict,
    fingerprint,
    verdict,
)


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


CaseKey = Literal["chembl", "goodreads", "goodreads-minilm", "amazon"]
DEFAULT_CASES: tuple[CaseKey, ...] = ("chembl", "goodreads", "amazon")


class LeakageConfig(StudyConfig):
    """Cases (``datasets``: keys of `CASES`), seeds, the ChEMBL subsample and the group probe."""

    datasets: list[CaseKey] = Field(  # type: ignore[assignment]
        default_factory=lambda: list(DEFAULT_CASES), min_length=1
    )
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1)
    chembl_max_groups: int = Field(300, ge=2, le=1_000_000)
    probe: Literal["knn", "mlp"] = "knn"


class LeakageStudy(Study[LeakageConfig]):
    """The Clever-Hans audit per case and seed."""

    name = "leakage"
    config_type = LeakageConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # seconds: 25 ChEMBL assays, 2 seeds (numbers mean nothing)
        "tiny": {"datasets": ["chembl"], "seeds": [0, 1], "chembl_max_groups": 25},
        "full": {},
    }

    def __init__(self) -> None:
        self.config = LeakageConfig.model_validate({})
        self.tables: dict[str, Any] = {}
        self.clusters: dict[str, Any] = {}

    def audit_config(self, config: LeakageConfig) -> Any:
        from recfuse.audit.audit import AuditConfig

        return AuditConfig(seeds=tuple(config.seeds), probe=config.probe)

    def prepare(self, config: LeakageConfig, folder: StudyFolder) -> None:
        from recfuse.audit.audit import structure_clusters
        from recfuse.audit.cases import load_audit_table

        self.config = config
        for key in config.datasets:
            case = CASES[key]
            self.tables[key] = load_audit_table(
                case.dataset, case.group, case.target, case.context, features=case.features,
                max_groups=config.chembl_max_groups if case.subsample else None,
            )  # fmt: skip
            self.clusters[key] = structure_clusters(self.tables[key])

    def inputs(self, cell: Cell, config: LeakageConfig) -> dict[str, Any]:
        table = self.tables[cell.dataset]
        audit = self.audit_config(config).to_json()
        audit.pop("seeds")  # the cell's own seed is in its key; the others are not its input
        return {"case": vars(CASES[cell.dataset]), "audit": audit, "rows": table.n_rows,
                "groups": fingerprint(table.groups), "notes": table.notes}  # fmt: skip

    def cells(self, config: LeakageConfig, done: Results) -> list[Cell]:
        return [Cell("audit", seed, key) for key in config.datasets for seed in config.seeds]

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellResult:
        from recfuse.audit.audit import audit_seed, save_splits

        config: LeakageConfig = ctx.config  # type: ignore[assignment]
        table, clusters = self.tables[cell.dataset], self.clusters[cell.dataset]
        audit = self.audit_config(config)
        record = audit_seed(table, cell.seed, audit, clusters)
        path = ctx.folder.path / cell.dataset / "splits" / f"seed_{cell.seed}.npz"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_splits(table, cell.seed, audit, clusters, path)
        top5 = _leaf(record, "random.who_made_it.top5")
        return CellResult({"who_top5": top5}, None, {"record": record})

    def summarize(self, results: Results, folder: StudyFolder) -> Summary:
        from recfuse.atomic import write_json
        from recfuse.audit.report import build_report, write_report

        payloads: dict[str, dict[str, Any]] = {}
        records_of: dict[str, list[dict[str, Any]]] = {}
        for key in dict.fromkeys(f.cell.dataset for f in results.cells):
            cells = sorted(results.get(key, "audit"), key=lambda f: f.cell.seed)
            records = [f.result.info["record"] for f in cells]
            seeds = [f.cell.seed for f in cells]  # the seeds this case finished
            config_json = self.audit_config(self.config.model_copy(update={"seeds": seeds}))
            config_json = config_json.to_json()
            markdown, payload = build_report(self.tables[key], records, config_json)
            write_report(folder.path / key, markdown, payload)
            payloads[key], records_of[key] = payload, records
            print(f"{key}: {payload['verdict']['summary']}")
        text = results_markdown(payloads)
        plot(payloads, folder.path / "leakage.png")
        write_json(folder.path / "leakage_summary.json", {
            k: {x: p[x] for x in ("summary", "verdict", "notes", "n_rows")}
            for k, p in payloads.items()
        })  # fmt: skip
        print(f"written: {folder.path / 'results.md'}, {folder.path / 'leakage.png'}")
        return Summary(text, who_made_it_verdicts(records_of), [str(folder.path / "leakage.png")])


def _leaf(record: dict[str, Any], dotted: str) -> float:
    node: Any = record["splits"]
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return float("nan")
        node = node[part]
    return float(node)


def who_made_it_verdicts(records_of: dict[str, list[dict[str, Any]]]) -> list[Verdict]:
    """Per case: does the who-made-it probe's top-5 beat chance on the random split? A paired
    t-test over seeds, Holm-corrected across cases, with the 3-seed rule."""
    raw = []
    for key, records in records_of.items():
        a = [_leaf(r, "random.who_made_it.top5") for r in records]
        b = [_leaf(r, "random.who_made_it.chance_top5") for r in records]
        test = paired_arrays(a, b, "who_made_it.top5")  # type: ignore[arg-type]
        seeds = tuple(int(r.get("seed", i)) for i, r in enumerate(records))
        raw.append(Comparison(key, "who-made-it top-5", "chance top-5", "top5", seeds, test, 1.0))
    adjusted = holm([c.test.t_pvalue for c in raw])
    return [
        verdict(f"{c.dataset}: the group is identifiable (who-made-it top-5 > chance)",
                Comparison(c.dataset, c.arm, c.reference, c.metric, c.seeds, c.test, p))
        for c, p in zip(raw, adjusted, strict=True)
    ]  # fmt: skip
