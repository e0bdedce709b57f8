"""Baselines study: every baseline under leave-one-out full ranking, on any dataset, over seeds.

One cell per (dataset, model, seed): the model is fitted on the seed's leave-one-out split,
selected on validation (early stopping for the neural ones) and scored once on the test items,
ranking all items. The table is mean ± std over seeds; each model is compared with Pop by a
paired test over users (Holm-corrected across models).
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from recfuse.models.training import TrainConfig
from recfuse.runs.study import (
    Cell,
    CellContext,
    CellResult,
    Results,
    Study,
    StudyConfig,
    StudyFolder,
    Summary,
    fingerprint,
)

MODELS = ("Pop", "ItemKNN", "EASE", "BPR", "SASRec", "SASRec-sampled", "GRU4Rec")
#: sequence length per dataset (default 50): SASRec on ml-100k reaches test NDCG@10 0.100 at 50
#: with sliding windows, 0.086 with one window per user (3 seeds each, docs/results/efficiency.md);
#: GRU4Rec keeps one window per user (sliding was not measured for it)
MAX_LEN: dict[str, int] = {}
METRICS = ["NDCG@10", "Recall@10", "MRR", "Coverage@10"]


class BaselinesConfig(StudyConfig):
    """Which baselines, on which datasets; ``train`` is the neural models' budget."""

    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1)
    models: list[str] = Field(default_factory=lambda: list(MODELS), min_length=1)
    max_len: int | None = Field(None, ge=1, le=10_000, description="default: per dataset")
    threads: int = Field(1, ge=1, le=256)  # 1: measured faster on 2 shared cores
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(
            epochs=200, batch_size=128, lr=1e-3, patience=10,
            valid_users=5000, progress=False,
        )
    )  # fmt: skip

    #: which cells run; each cell's own model is in its key (adding a model reruns nothing)
    EXECUTION_FIELDS: ClassVar[frozenset[str]] = StudyConfig.EXECUTION_FIELDS | {"models"}

    @field_validator("models")
    @classmethod
    def _known_models(cls, value: list[str]) -> list[str]:
        known = {m.lower(): m for m in MODELS}
        unknown = [m for m in value if m.lower() not in known]
        if unknown:
            raise ValueError(f"unknown {unknown} (known: {', '.join(MODELS)})")
        return [known[m.lower()] for m in value]


def build_baseline(name: str, dataset: str, config: BaselinesConfig, train: TrainConfig) -> Any:
    """One baseline with the study's settings (BPR: larger batches and a larger step)."""
    import dataclasses

    from recfuse.models import BPR, EASE, GRU4Rec, ItemKNN, Pop, SASRec

    max_len = config.max_len or MAX_LEN.get(dataset, 50)
    if name == "Pop":
        return Pop()
    if name == "ItemKNN":
        return ItemKNN(k=100)
    if name == "EASE":
        return EASE(l2=500.0)
    if name == "BPR":
        return BPR(train=dataclasses.replace(train, batch_size=4096, lr=5e-3))
    if name == "SASRec":
        return SASRec(max_len=max_len, loss="ce", windows="sliding", train=train)
    if name == "SASRec-sampled":
        return SASRec(
            max_len=max_len, loss="sampled", negatives=256, windows="sliding", train=train
        )
    return GRU4Rec(max_len=max_len, train=train)


class BaselinesStudy(Study[BaselinesConfig]):
    """Every baseline on every dataset and seed."""

    name = "baselines"
    config_type = BaselinesConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # seconds: a test of the whole path, numbers mean nothing
        "tiny": {
            "models": ["Pop", "EASE", "BPR", "SASRec"],
            "max_len": 20,
            "train": {"epochs": 1, "valid_users": 200, "max_seconds": None},
        },
        "full": {},
    }

    def __init__(self) -> None:
        self.splits: dict[tuple[str, int], Any] = {}

    def prepare(self, config: BaselinesConfig, folder: StudyFolder) -> None:
        from recfuse.data import load_dataset
        from recfuse.split import make_split

        for ds in config.datasets:
            data = load_dataset(ds)
            for seed in config.seeds:
                split = make_split(data, "leave_one_out", seed=seed)
                self.splits[(ds, seed)] = split
                if not (folder.path / "splits" / f"{ds}-seed{seed}" / "split.json").exists():
                    split.save(folder.path / "splits" / f"{ds}-seed{seed}")

    def inputs(self, cell: Cell, config: BaselinesConfig) -> dict[str, Any]:
        split = self.splits[(cell.dataset, cell.seed)]
        train = TrainConfig(**{**vars(config.train), "seed": cell.seed})
        model = build_baseline(cell.arm_name, cell.dataset, config, train)
        return {"split": fingerprint(split.train, split.valid, split.test),
                "params": model.get_params()}  # fmt: skip

    def cells(self, config: BaselinesConfig, done: Results) -> list[Cell]:
        return [Cell(m, s, d) for d in config.datasets for m in config.models for s in config.seeds]

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellResult:
        import time

        from recfuse.evaluation import Evaluator, fit_validated

        config: BaselinesConfig = ctx.config  # type: ignore[assignment]
        split = self.splits[(cell.dataset, cell.seed)]
        model = build_baseline(cell.arm_name, cell.dataset, config, ctx.train_config(cell.seed))
        started = time.perf_counter()
        fit_validated(model, split)  # early stopping on validation (torch models)
        fit_s = time.perf_counter() - started
        evaluator = Evaluator(split, progress=False)
        valid = evaluator.evaluate(model, "valid")
        test = evaluator.evaluate(model, "test")
        metrics = {m: test.metrics[m] for m in METRICS}
        metrics["valid NDCG@10"] = valid.metrics["NDCG@10"]
        info = {
            "protocol": test.protocol,
            "fit_seconds": round(fit_s, 1),
            "eval_seconds": round(test.seconds, 1),
            "epochs": len(getattr(model, "history_", [])) or None,
            "params": model.get_params(),
        }
        return CellResult(metrics, test.per_user[["user", *METRICS[:3]]], info)

    def summarize(self, results: Results, folder: StudyFolder) -> Summary:
        lines = ["### Baselines (leave-one-out, full ranking over all items)", ""]
        lines.append(results.markdown([*METRICS, "valid NDCG@10"]))
        frame = results.frame()
        seconds = frame.groupby(["dataset", "arm"], sort=False)[["fit_seconds"]].mean()
        lines += ["| dataset | model | fit s (mean) | epochs (mean) |", "|---|---|---|---|"]
        for (ds, arm), row in seconds.iterrows():
            epochs = frame[(frame["dataset"] == ds) & (frame["arm"] == arm)]["epochs"].mean()
            shown = "–" if epochs != epochs else f"{epochs:.0f}"  # NaN: not trained by epochs
            lines.append(f"| {ds} | {arm} | {row['fit_seconds']:.1f} | {shown} |")
        for ds in dict.fromkeys(frame["dataset"]):
            others = [a for a in dict.fromkeys(frame[frame["dataset"] == ds]["arm"]) if a != "Pop"]
            if "Pop" not in set(frame["arm"]) or not others:
                continue
            lines += ["", f"Paired t-tests vs Pop on {ds}, NDCG@10 (Holm-adjusted):", ""]
            lines += [f"- {c.line()}" for c in results.compare_all(ds, others, "Pop", "NDCG@10")]
        text = "\n".join(lines) + "\n"
        print(text)
        print(f"study folder: {folder.path}")
        return Summary(text)
