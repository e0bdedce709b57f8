"""`recfuse study guidance`: does selective LLM guidance (S-LLMR) beat no guidance and global KD?

Arms (each a cell ``kind|lambda``): ``none``; ``global_kd`` (listwise distillation of the
teacher over every user's candidates, weight 1); ``always`` (pairwise loss, g = 1);
``selective`` (learned gate); ``random`` (the learned gate's values shuffled over pairs: same
coverage, no information); ``oracle`` (g = 1 exactly where the teacher is right). Lambda is
chosen per arm on validation NDCG@10 with seed 0, then the chosen lambda runs every seed.

The offline stage (`recfuse.guidance.prepare_guidance`) runs once per dataset in `prepare` and
is saved in the study folder; the teacher is asked again on every run so the cache hit rate of a
rerun is measured (a rerun computes no new LLM call).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field

from recfuse import atomic
from recfuse.data.dataset import Dataset
from recfuse.data.subsample import load_sample
from recfuse.evaluation import Evaluator
from recfuse.evaluation.validation import fit_validated
from recfuse.guidance import (
    BACKBONES,
    Guidance,
    LLMTeacher,
    PairSet,
    Prepared,
    pair_accuracy,
    prepare_guidance,
    teacher_from_name,
)
from recfuse.guidance.pairs import PAIR_COLUMNS, holdout_split
from recfuse.models.training import TorchRecommender, TrainConfig
from recfuse.runs.study import (
    Cell,
    CellContext,
    CellResult,
    Finished,
    Results,
    Study,
    StudyConfig,
    StudyFolder,
    Summary,
    load_study_config,
    run_study,
)
from recfuse.split import Split, make_split

ArmKind = Literal["none", "global_kd", "always", "selective", "random", "oracle"]
ARMS: tuple[ArmKind, ...] = ("none", "global_kd", "always", "selective", "random", "oracle")
GUIDED = ARMS[1:]
METRICS = ("NDCG@10", "Recall@10")
SLICES = ("all", "cold", "tail", "head")


class GuidanceConfig(StudyConfig):
    """The guidance study's config (defaults ← preset ← YAML ← ``--set``)."""

    backbone: Literal["sasrec", "bpr"] = "sasrec"
    teacher: str = "minilm"
    arms: list[ArmKind] = Field(default_factory=lambda: list(ARMS))
    lambdas: list[float] = Field(default_factory=lambda: [0.1, 1.0], min_length=1)
    gate: Literal["logistic", "mlp"] = "logistic"
    n_hard: int = Field(3, ge=0)
    n_pop: int = Field(2, ge=0)
    top_k: int = Field(50, ge=1)
    history_items: int = Field(10, ge=1)
    max_users: int | None = Field(None, ge=10, description="random user sample (MicroLens)")
    dim: int = 64
    max_len: int = 50
    # SASRec only: sliding windows train every next-item target (0.0999 vs 0.0863 NDCG@10 on
    # ml-100k for the last window alone, configs/sasrec_ml100k.yaml).
    windows: Literal["last", "sliding"] = "sliding"
    cold_quantile: float = Field(0.2, gt=0, lt=1)


def arm_label(kind: str, lam: float) -> str:
    return f"{kind}|{lam:g}"


def parse_arm(label: str) -> tuple[str, float]:
    kind, lam = label.split("|")
    return kind, float(lam)


@dataclass
class DatasetState:
    dataset: Dataset
    split: Split
    prepared: Prepared
    cold_max: int  # users with at most this many test-stage history items are "cold"
    digest: str


def prompt_texts(dataset: Dataset, teacher: Any) -> list[str]:
    """Item texts a teacher reads: titles for an LLM prompt (short, as the paper's prompts),
    every text field for MiniLM similarity."""
    if isinstance(teacher, LLMTeacher) and "title" in dataset.items.columns:
        return dataset.items["title"].fillna("").astype(str).tolist()
    return dataset.item_texts()


def make_backbone(config: GuidanceConfig, train: TrainConfig) -> TorchRecommender:
    cls = BACKBONES[config.backbone]
    if config.backbone == "bpr":
        return cls(dim=config.dim, train=train)
    return cls(dim=config.dim, max_len=config.max_len, windows=config.windows, train=train)


class GuidanceStudy(Study[GuidanceConfig]):
    name, config_type, version = "guidance", GuidanceConfig, 1
    presets = {
        "fast": {"train": {"epochs": 40, "patience": 3}, "lambdas": [1.0]},
        "full": {"train": {"epochs": 100, "patience": 5}},
    }

    def __init__(self) -> None:
        self.state: dict[str, DatasetState] = {}

    # -------------------------------------------------------------- offline stage

    def prepare(self, config: GuidanceConfig, folder: StudyFolder) -> None:
        self.config_ = config
        for name in config.datasets:
            self.state[name] = self._prepare_one(name, config, folder)

    def _prepare_one(self, name: str, config: GuidanceConfig, folder: StudyFolder) -> DatasetState:
        dataset = load_sample(name, config.max_users)
        split = make_split(dataset, "leave_one_out")
        teacher = teacher_from_name(config.teacher, config.history_items)
        texts = prompt_texts(dataset, teacher)
        tag = hashlib.sha256(
            json.dumps(
                [name, config.result_fields(), teacher.identity()], sort_keys=True, default=str
            ).encode()
        ).hexdigest()[:10]
        path = folder.path / "prepared" / f"{name}-{tag}.parquet"
        train = TrainConfig(**{**config.train.__dict__, "seed": 0, "progress": False})
        if path.is_file():
            prepared = self._reload(path, split, teacher, texts, dataset.name, folder)
        else:
            prepared = prepare_guidance(
                split,
                lambda: make_backbone(config, train),
                teacher,
                texts,
                dataset.name,
                config.n_hard,
                config.n_pop,
                config.top_k,
                config.gate,
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic.atomic_path(path) as tmp:
                prepared.table.to_parquet(tmp, index=False)
            atomic.write_json(path.with_suffix(".json"), prepared.info)
        self._log_teacher_run(folder, name, prepared)
        lengths = np.array([len(h) for h in split.histories("test")])
        test_users = np.unique(split.test["user"].to_numpy())
        cold_max = int(np.quantile(lengths[test_users], config.cold_quantile))
        cols = ["user", "pos", "neg", "p", "g", "right"]
        digest = hashlib.sha256(prepared.table[cols].to_numpy().tobytes()).hexdigest()[:16]
        return DatasetState(dataset, split, prepared, cold_max, digest)

    def _reload(
        self,
        path: Path,
        split: Split,
        teacher: Any,
        texts: list[str],
        dataset: str,
        folder: StudyFolder,
    ) -> Prepared:
        """The saved offline stage; the teacher is asked again (all cache hits) to measure it."""
        table = pd.read_parquet(path)
        info = json.loads(path.with_suffix(".json").read_text())
        holdout = holdout_split(split)
        out = teacher.preferences(
            PairSet(holdout, table[list(PAIR_COLUMNS)].copy()), texts, dataset
        )
        if not np.allclose(out.p, table["p"].to_numpy()):
            folder.log(f"{dataset}: teacher answers changed since the offline stage was saved")
        info["rerun_teacher_cost"] = out.cost
        return Prepared(table, holdout.histories("valid"), out, None, info)

    def _log_teacher_run(self, folder: StudyFolder, name: str, prepared: Prepared) -> None:
        cost = prepared.teacher.cost if prepared.teacher else {}
        with open(folder.path / "teacher_runs.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"dataset": name, "time": time.time(), **cost}) + "\n")

    def inputs(self, cell: Cell, config: GuidanceConfig) -> dict[str, Any]:
        state = self.state.get(cell.dataset)
        return {"pairs": state.digest if state else None}

    # -------------------------------------------------------------- cells

    def cells(self, config: GuidanceConfig, done: Results) -> list[Cell]:
        out: list[Cell] = []
        first, rest = config.seeds[0], config.seeds[1:]
        for ds in config.datasets:
            sweep = [
                Cell(arm_label(k, lam), first, ds)
                for k in config.arms
                for lam in (config.lambdas if k != "none" else [0.0])
            ]
            out += sweep
            chosen = chosen_lambdas(done, ds, config)
            if chosen is not None:
                out += [Cell(arm_label(k, chosen[k]), s, ds) for k in config.arms for s in rest]
        return out

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellResult:
        config = ctx.config
        assert isinstance(config, GuidanceConfig)
        state = self.state[cell.dataset]
        kind, lam = parse_arm(cell.arm_name)
        model = make_backbone(config, ctx.train_config(cell.seed, progress=False))
        table = state.prepared.table
        if kind != "none":
            model.guidance = guidance_for(kind, lam, state.prepared, cell.seed)  # type: ignore[attr-defined]
        fit_validated(model, state.split)
        result = Evaluator(state.split, ks=(10,)).evaluate(model, "test")
        per_user = result.per_user[["user", "n_history", "target_tail", *METRICS]].copy()
        per_user["cold"] = (per_user["n_history"] <= state.cold_max).astype(float)
        metrics = slice_metrics(per_user)
        g = model.guidance.g if kind != "none" else np.zeros(len(table))  # type: ignore[attr-defined]
        users, pos, neg = (table[c].to_numpy() for c in ("user", "pos", "neg"))
        info = {
            "lam": lam,
            "valid": float(model.best_valid_),
            "epochs": len(model.history_),
            "train_seconds": round(model.train_seconds_, 2),
            "score_seconds": scoring_seconds(model, state.split),
            "pair_acc": pair_accuracy(model, users, pos, neg, state.prepared.prefixes),
            "coverage": float(np.mean(g)),
        }
        return CellResult(metrics, per_user=per_user, info=info)

    # -------------------------------------------------------------- summary

    def summarize(self, results: Results, folder: StudyFolder) -> Summary:
        return summarize_guidance(self, results, folder)


def guidance_for(kind: str, lam: float, prepared: Prepared, seed: int) -> Guidance:
    """The auxiliary loss of one arm over the prepared pairs."""
    t = prepared.table
    ones = np.ones(len(t))
    gate = {
        "global_kd": ones,
        "always": ones,
        "selective": t["g"].to_numpy(),
        "random": np.random.default_rng(seed).permutation(t["g"].to_numpy()),
        "oracle": t["right"].to_numpy().astype(float),
    }[kind]
    return Guidance(
        t["user"].to_numpy(),
        t["pos"].to_numpy(),
        t["neg"].to_numpy(),
        t["p"].to_numpy(),
        gate,
        lam,
        prepared.prefixes,
        form="listwise" if kind == "global_kd" else "pairwise",
        seed=seed,
    )


def slice_masks(per_user: pd.DataFrame) -> dict[str, np.ndarray]:
    """Boolean masks over per-user rows: all, cold users, tail targets, head targets."""
    tail = per_user["target_tail"].to_numpy() >= 0.5
    return {
        "all": np.ones(len(per_user), dtype=bool),
        "cold": per_user["cold"].to_numpy() > 0,
        "tail": tail,
        "head": ~tail,
    }


def slice_metrics(per_user: pd.DataFrame) -> dict[str, float]:
    """Overall and per-slice means: cold users, tail targets, head targets."""
    out = {}
    for s, m in slice_masks(per_user).items():
        for metric in METRICS:
            name = metric if s == "all" else f"{metric} {s}"
            out[name] = float(per_user.loc[m, metric].mean()) if m.any() else float("nan")
        out[f"users {s}"] = float(m.sum())
    return out


def scoring_seconds(model: TorchRecommender, split: Split, repeats: int = 3) -> float:
    """Best-of-``repeats`` wall time to score every test user against all items."""
    users = np.unique(split.test["user"].to_numpy())
    hist = split.histories("test")
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        for lo in range(0, len(users), 1024):
            us = users[lo : lo + 1024]
            model.score(us, [hist[u] for u in us])
        best = min(best, time.perf_counter() - t0)
    return round(float(best), 4)


def chosen_lambdas(done: Results, ds: str, config: GuidanceConfig) -> dict[str, float] | None:
    """Per arm, the lambda with the best seed-0 validation NDCG@10 (None until all ran)."""
    chosen: dict[str, float] = {}
    for k in config.arms:
        lams = config.lambdas if k != "none" else [0.0]
        scores = {}
        for lam in lams:
            cells = [f for f in done.get(ds, arm_label(k, lam)) if f.cell.seed == config.seeds[0]]
            if not cells:
                return None
            scores[lam] = float(cells[0].result.info["valid"])
        chosen[k] = max(lams, key=lambda lam: (scores[lam], -lam))
    return chosen


def final_results(results: Results, config: GuidanceConfig) -> Results:
    """The cells at each arm's chosen lambda, renamed to the arm's kind."""
    keep = []
    for ds in config.datasets:
        chosen = chosen_lambdas(results, ds, config) or {}
        for f in results.cells:
            if f.cell.dataset != ds:
                continue
            kind, lam = parse_arm(f.cell.arm_name)
            if chosen.get(kind) == lam:
                keep.append(Finished(Cell(kind, f.cell.seed, ds), f.key, f.result))
    return Results(keep)


def sliced(results: Results, which: str) -> Results:
    """The same cells with per-user rows restricted to one slice (for paired tests)."""
    out = []
    for f in results.cells:
        pu = f.result.per_user
        assert pu is not None
        mask = slice_masks(pu)[which]
        out.append(Finished(f.cell, f.key, CellResult(f.result.metrics, pu[mask], f.result.info)))
    return Results(out)


def summarize_guidance(study: GuidanceStudy, results: Results, folder: StudyFolder) -> Summary:
    from recfuse.studies.guidance_report import report

    return report(study, results, folder)


def main(
    dataset: str = "ml-100k",
    teacher: str = "minilm",
    backbone: str = "sasrec",
    seeds: int = 3,
    preset: str | None = None,
    out: str = "runs",
    workers: int = 1,
    max_users: int | None = None,
    set: list[str] | None = None,  # noqa: A002 (the CLI option is --set)
) -> Path:
    """Selective LLM guidance (S-LLMR): teacher accuracy, gate, six arms, slices, verdicts."""
    study = GuidanceStudy()
    base = ["train.batch_size=4096", "train.lr=0.005"] if backbone == "bpr" else []
    config = load_study_config(
        study,
        preset=preset,
        overrides=[*base, *(set or [])],
        options={
            "datasets": [dataset],
            "teacher": teacher,
            "backbone": backbone,
            "seeds": list(range(seeds)),
            "output": out,
            "workers": workers,
            "max_users": max_users,
        },
    )
    summary = run_study(study, config)
    print(summary.markdown)
    for v in summary.verdicts:
        print("-", v.line())
    return Path(summary.data.get("folder", out))


__all__ = ["GuidanceConfig", "GuidanceStudy", "main"]
