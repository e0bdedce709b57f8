"""LLM-I2I study: does refining the *data* (generator for tail items, discriminator for noisy
edges) raise the recall of I2I models, overall and on long-tail targets?

One cell per (dataset, I2I model × data arm, seed). The split is leave-one-out; the I2I trigger
is the user's last visible item (valid: last training item; test: the validation item), the
target the next item, full ranking over all items, seen items masked, pessimistic ties. Every
data arm changes only the edges the model is fitted on; evaluation is identical for all arms.
Seeds vary candidate sampling, the random controls and the labelled check's negatives.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from recfuse.augment.generator import GeneratorSettings
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
from recfuse.studies.i2i.data import DATA_ARMS, SELECTED, DropSettings, RefinedData, refine

MODEL_NAMES = ("itemcf", "swing", "emb", "sasrec")
DEFAULT_MODELS = ["itemcf", "swing", "emb"]  # sasrec trains a network per arm: ask for it
METRICS = ["Recall@10", "NDCG@10", "Recall@50", "tail Recall@10", "head Recall@10"]


class I2IConfig(StudyConfig):
    """What the I2I study runs (teacher, generator budget, drop candidates, models)."""

    datasets: list[str] = Field(default_factory=lambda: ["amazon-scientific"], min_length=1)
    models: list[str] = Field(default_factory=lambda: list(DEFAULT_MODELS), min_length=1)
    arms: list[str] = Field(default_factory=lambda: list(DATA_ARMS), min_length=1)
    teacher: Literal["minilm", "smollm2", "http"] = "minilm"
    llm_base_url: str | None = Field(None, description="teacher=http: OpenAI-compatible URL")
    llm_model: str = Field("smollm2", description="teacher=http: the server's model name")
    per_item: int = Field(3, ge=1, le=20, description="synthetic edges per tail item (m)")
    candidates: int = Field(10, ge=1, le=200, description="users the teacher judges per item")
    pool: int = Field(50, ge=1, le=5000, description="retriever's top users to sample from")
    synthetic_weight: float = Field(0.5, gt=0.0, le=1.0)
    max_items: int | None = Field(None, ge=1, description="tail items to generate for (rarest)")
    drop_fractions: list[float] = Field(default_factory=lambda: [0.1, 0.2], min_length=1)
    downweight: float = Field(0.25, gt=0.0, lt=1.0, description="disc-weight: kept weight")
    judge: Literal["teacher", "minilm"] = Field(
        "teacher", description="who scores every training edge for the discriminator"
    )
    swing_max_users: int = Field(50, ge=2, le=10_000)
    sasrec_max_len: int = Field(50, ge=2, le=200, description="sasrec: window length")
    sasrec_epochs: int = Field(50, ge=1, le=500, description="sasrec: most epochs (patience 5)")
    check_pairs: int = Field(2000, ge=10, le=100_000)
    max_users: int | None = Field(None, ge=10, description="random user sample (MicroLens)")

    @field_validator("models", "arms")
    @classmethod
    def _known(cls, value: list[str], info: ValidationInfo) -> list[str]:
        known = MODEL_NAMES if info.field_name == "models" else DATA_ARMS
        bad = [v for v in value if v not in known]
        if bad:
            raise ValueError(f"unknown {info.field_name} {bad} (known: {', '.join(known)})")
        return value

    @field_validator("drop_fractions")
    @classmethod
    def _fractions(cls, value: list[float]) -> list[float]:
        if any(not 0.0 < f <= 0.5 for f in value):
            raise ValueError("every drop fraction must be in (0, 0.5] (the gate's cap)")
        return sorted(value)


@dataclass(frozen=True)
class I2IArm:
    """One I2I model on one data arm; ``fraction`` is set only for the random-drop control
    (the discriminator's choice it copies)."""

    model: str
    data: str
    fraction: float | None = None

    @property
    def name(self) -> str:
        return f"{self.model}:{self.data}"


def build_model(name: str, config: I2IConfig, seed: int) -> Any:
    from recfuse.models.i2i import EmbeddingI2I, ItemCF, Swing

    if name == "itemcf":
        return ItemCF(k=200)
    if name == "swing":
        return Swing(max_users=config.swing_max_users, seed=seed)
    if name == "sasrec":
        from recfuse.models.i2i_sasrec import SASRecI2I

        return SASRecI2I(dim=64, max_len=config.sasrec_max_len, epochs=config.sasrec_epochs,
                         seed=seed)  # fmt: skip
    return EmbeddingI2I(dim=64, seed=seed)


def teacher_factory(config: I2IConfig, dataset: Any, cache: Any = None) -> Any:
    """A function (split, profiles) -> teacher for the config's teacher."""
    from recfuse.augment.teachers import LLMTeacher

    if config.teacher == "minilm":
        return lambda split, profiles: profiles
    from recfuse.llm.backend_spec import BackendSpec, job_threads

    if config.teacher == "http":
        backend = BackendSpec(kind="http", base_url=config.llm_base_url, model=config.llm_model)
    else:
        # float32: int8 changes pairwise and yes/no choices on this CPU (docs/llm.md)
        backend = BackendSpec(model="smollm2", batch_size=16, compute_type="float32",
                              threads=job_threads())  # fmt: skip
    titles = dataset.items["title"].fillna("").astype(str).tolist()
    return lambda split, profiles: LLMTeacher(
        backend, titles, split, f"i2i-{dataset.name}-{config.teacher}", name=config.teacher,
        cache=cache,
    )  # fmt: skip


class I2IStudy(Study[I2IConfig]):
    """Data arms × I2I models × seeds; paired tests vs the original data and the controls."""

    name = "i2i"
    config_type = I2IConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # seconds on ml-100k: a test of the whole path, numbers mean nothing
        "tiny": {
            "datasets": ["ml-100k"],
            "models": ["itemcf"],
            "seeds": [0],
            "max_items": 40,
            "check_pairs": 100,
            "drop_fractions": [0.1],
        },  # fmt: skip
        "full": {},
    }

    def __init__(self) -> None:
        self.data: dict[tuple[str, int], RefinedData] = {}
        self.features: dict[str, str] = {}

    def prepare(self, config: I2IConfig, folder: StudyFolder) -> None:
        from recfuse.data.subsample import load_sample
        from recfuse.features.extract import dataset_features
        from recfuse.split import make_split

        settings = GeneratorSettings(config.per_item, config.candidates, config.pool,
                                     config.synthetic_weight, config.max_items)  # fmt: skip
        drops = DropSettings(config.drop_fractions, config.check_pairs, config.downweight,
                             config.judge)  # fmt: skip
        for ds in config.datasets:
            dataset = load_sample(ds, config.max_users)
            fset = dataset_features(ds, "minilm", progress=False)  # the full catalogue's rows
            vectors = fset.load(fset.n_layers - 1, "mean").astype(np.float32)
            if "source_item" in dataset.items:  # a user sample keeps only the items it touched
                vectors = vectors[dataset.items["source_item"].to_numpy()]
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            self.features[ds] = Path(str(fset.folder)).name
            factory = teacher_factory(config, dataset)
            for seed in config.seeds:
                split = make_split(dataset, "leave_one_out", seed=seed)
                ledger = folder.path / "ledgers" / f"{ds}-seed{seed}-{config.teacher}.db"
                self.data[(ds, seed)] = refine(split, vectors, factory, settings, drops, seed,
                                               ledger)  # fmt: skip
                folder.log(f"{ds} seed {seed}: refined data {self.data[(ds, seed)].cost}")

    def inputs(self, cell: Cell, config: I2IConfig) -> dict[str, Any]:
        split = self.data[(cell.dataset, cell.seed)].split
        return {"split": fingerprint(split.train, split.valid, split.test),
                "features": self.features[cell.dataset]}  # fmt: skip

    def cells(self, config: I2IConfig, done: Results) -> list[Cell]:
        out = []
        for ds in config.datasets:
            for model in config.models:
                for seed in config.seeds:
                    for data in config.arms:
                        if data != "rand-drop":
                            out.append(Cell(I2IArm(model, data), seed, ds))
                            continue
                        chosen = _chosen_fraction(done, ds, f"{model}:disc", seed)
                        if chosen is not None:  # a later stage: after "disc" chose
                            out.append(Cell(I2IArm(model, data, chosen), seed, ds))
        return out

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellResult:
        from recfuse.studies.i2i.evaluate import run_i2i_cell

        config: I2IConfig = ctx.config  # type: ignore[assignment]
        arm = cell.arm if isinstance(cell.arm, I2IArm) else I2IArm(**{
            k: v for k, v in cell.arm.items() if k != "name"})  # fmt: skip
        refined = self.data[(cell.dataset, cell.seed)]
        model = build_model(arm.model, config, cell.seed)
        fractions: list[float | None] = (
            list(config.drop_fractions) if arm.data in SELECTED else [arm.fraction]
        )
        return run_i2i_cell(model, refined, arm.data, fractions)

    def summarize(self, results: Results, folder: StudyFolder) -> Summary:
        from recfuse.studies.i2i.report import summarize

        extra = {f"{ds}/seed{s}": {"cost": d.cost, "checks": {str(f): c for f, c in d.checks.items()},
                                   "teacher_check": d.teacher_check}
                 for (ds, s), d in self.data.items()}  # fmt: skip
        return summarize(results, folder, extra)


def _chosen_fraction(done: Results, dataset: str, arm: str, seed: int) -> float | None:
    for f in done.get(dataset, arm) if len(done) else []:
        if f.cell.seed == seed:
            return float(f.result.info["fraction"])
    return None
