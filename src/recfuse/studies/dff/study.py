"""The DFF study on the skeleton: arms × seeds on one leave-one-out split per dataset.

It asks the DFF paper's three questions of any frozen model and dataset:

1. Do intermediate hidden states beat features of LLM-generated captions?
2. Does fusing content with ID embeddings beat replacing the IDs?
3. Does a layer's usefulness vary from layer to layer?

Stage 1 trains ID only and single-layer fusion (and replacement) over the sweep layers. Stage 2,
once stage 1 is done, uses the best layer by mean *validation* NDCG@10 (never a test number):
fusion modes at that layer, the caption arms (when captions are cached) and DFF over the sweep
layers. "fusion-best", "fusion-last", ... are aliases resolved in memory, not copied results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from recfuse.data.dataset import Dataset
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
from recfuse.split import Split
from recfuse.studies.dff.arms import Arm
from recfuse.studies.dff.features import StudyFeatures

METRIC = "NDCG@10"


class DFFConfig(StudyConfig):
    """The DFF study's config. Defaults are the benchmark ("full"); budgets live in ``train``."""

    datasets: list[str] = Field(default_factory=lambda: ["microlens-50k"], min_length=1)
    model: str = Field("minilm", min_length=1, description="frozen model name or folder")
    backbone: Literal["sasrec", "gru4rec"] = "sasrec"
    pooling: Literal["mean", "last"] = "mean"
    max_users: int | None = Field(6000, ge=3, description="random user subsample (seed 0)")
    dim: int = Field(64, ge=2, le=4096)
    max_len: int = Field(20, ge=1, le=10_000)
    sweep_stride: int = Field(1, ge=1, le=1000, description="every n-th layer plus the last")
    fusion_modes: bool = Field(True, description="also concat and sum fusion at the best layer")
    replace_sweep: bool = Field(True, description="sweep replacement too (else: best, last)")
    extraction_device: str = Field("cpu", description="device of the frozen model")
    train: TrainConfig = Field(
        default_factory=lambda: TrainConfig(
            epochs=60, patience=5, max_seconds=90, valid_users=2000, progress=False
        )
    )

    EXECUTION_FIELDS: ClassVar[frozenset[str]] = StudyConfig.EXECUTION_FIELDS | {
        "extraction_device"  # the features' own fingerprint is part of every key
    }


@dataclass
class Prepared:
    """One dataset's shared state, made once before the cells run (forked workers inherit it)."""

    full: Dataset
    data: Dataset
    split: Split
    feats: StudyFeatures
    sweep: list[int]
    users_note: str
    items_note: str
    key: dict[str, Any]


class DFFStudy(Study[DFFConfig]):
    """DFF's three principles; see the module docstring."""

    name = "dff"
    config_type = DFFConfig
    presets: ClassVar[dict[str, dict[str, Any]]] = {
        # make demo: minutes on 2 cores from a cold cache
        "fast": {
            "max_users": 2000,
            "fusion_modes": False,
            "train": {"epochs": 15, "max_seconds": 20, "patience": 3, "valid_users": None},
        },
        # the benchmark; on a shared 2-core machine still a user subsample and a time budget
        "full": {},
        # make demo: the DFF question answered in <= 15 min from a cold cache on 2 cores —
        # amazon-scientific, every user, 3 seeds, each model trained to early stopping on
        # validation (no wall-clock cap). Arms: ID only, fusion at the first and the last layer
        # (the sweep: validation picks the best), replacement at the last and the best layer,
        # DFF over both. dim 32, max_len 10 (93% of users' histories fit), lr 3e-3 and early
        # stopping on 2,000 validation users are what fit: at dim 64, max_len 20, lr 1e-3 one
        # model took 31-37 epochs and ~330 s (trial runs in docs/demo.md).
        "demo": {
            "datasets": ["amazon-scientific"],
            "seeds": [0, 1, 2],
            "max_users": None,
            "dim": 32,
            "max_len": 10,
            "sweep_stride": 6,
            "fusion_modes": False,
            "replace_sweep": False,
            "workers": 2,
            "threads": 1,
            "train": {
                "epochs": 100,
                "lr": 3e-3,
                "patience": 3,
                "max_seconds": None,
                "valid_users": 2000,
                "progress": False,
            },  # fmt: skip
        },
    }

    def __init__(
        self,
        dataset_obj: Dataset | None = None,
        store: Any = None,
        progress: bool = True,
        echo: Callable[[str], Any] = print,
        echo_report: bool = True,
    ) -> None:
        self.dataset_obj, self.store, self.progress, self.echo = dataset_obj, store, progress, echo
        # False: the summary goes to results.md only (the demo prints its own one-screen summary)
        self.echo_report = echo_report
        self.prepared: dict[str, Prepared] = {}
        self.config: DFFConfig | None = None

    # ------------------------------------------------------------------ preparation

    def prepare(self, config: DFFConfig, folder: StudyFolder) -> None:
        from recfuse.data import load_dataset
        from recfuse.data.subsample import sample_users, subsample
        from recfuse.split import make_split
        from recfuse.studies.dff.features import load_study_features, sweep_layers

        self.config = config
        for name in config.datasets:
            full = self.dataset_obj if self.dataset_obj is not None else load_dataset(name)
            users = sample_users(full, config.max_users, seed=0)
            data = subsample(full, users)
            split = make_split(data, "leave_one_out", seed=0)
            split_dir = folder.path / "splits" / name
            if not (split_dir / "split.json").exists():
                split.save(split_dir)
            feats = load_study_features(
                full, data, config.model, config.pooling, self.progress, self.store,
                config.extraction_device,
            )  # fmt: skip
            prepared = Prepared(
                full, data, split, feats, sweep_layers(feats.n_layers, config.sweep_stride),
                users_note(len(users), full.n_users, config.max_users),
                f"{data.n_items} of {full.n_items} items (those the sampled users touched)",
                {
                    "split": fingerprint(split.train, split.valid, split.test),
                    "features": feats.fingerprint(),
                },
            )  # fmt: skip
            self.prepared[name] = prepared
            t = config.train
            self.echo(
                f"DFF study {name}: {prepared.users_note}, {prepared.items_note}; budget "
                f"{t.epochs} epochs / {time_cap(t.max_seconds)} per model, "
                f"{len(config.seeds)} seed(s); {feats.n_layers} layers of {config.model}; "
                f"{feats.caption_note}"
            )

    def inputs(self, cell: Cell, config: DFFConfig) -> dict[str, Any]:
        return self.prepared[cell.dataset].key

    # ------------------------------------------------------------------ cells

    def cells(self, config: DFFConfig, done: Results) -> list[Cell]:
        out: list[Cell] = []
        for ds in config.datasets:
            first = self.first_stage(ds)
            out += [Cell(arm, s, ds) for arm in first for s in config.seeds]
            if all(_finished(done, ds, arm.name, config.seeds) for arm in first):
                second = self.second_stage(ds, done)
                out += [Cell(arm, s, ds) for arm in second for s in config.seeds]
        return out

    def first_stage(self, ds: str) -> list[Arm]:
        assert self.config is not None
        sweep = self.prepared[ds].sweep
        arms = [Arm("id")] + [Arm.on_layer("fusion", layer) for layer in sweep]
        if self.config.replace_sweep:
            arms += [Arm.on_layer("replace", layer) for layer in sweep]
        return arms

    def second_stage(self, ds: str, done: Results) -> list[Arm]:
        assert self.config is not None
        prep, config = self.prepared[ds], self.config
        best = best_layer(done, ds, "fusion", prep.sweep)
        arms: list[Arm] = []
        if not config.replace_sweep:
            # no replacement sweep (budget): replacement at the last and the chosen layer
            last = prep.feats.n_layers - 1
            arms += [Arm.on_layer("replace", layer) for layer in sorted({last, best})]
        if config.fusion_modes:
            arms += [Arm.on_layer("fusion", best, mode) for mode in ("concat", "sum")]
        if prep.feats.captions is not None:
            arms += [Arm.on_captions("replace"), Arm.on_captions("fusion")]
        arms.append(Arm("dff", "layers", layers=tuple(prep.sweep)))
        return arms

    def run_cell(self, cell: Cell, ctx: CellContext) -> CellResult:
        import torch

        from recfuse.evaluation import Evaluator, fit_validated
        from recfuse.studies.dff.arms import encoder_factory, make_model

        config: DFFConfig = ctx.config  # type: ignore[assignment]
        prep, arm = self.prepared[cell.dataset], cell.arm
        torch.manual_seed(cell.seed)
        factory = encoder_factory(arm, prep.feats)
        train = ctx.train_config(cell.seed, progress=False)
        model = make_model(config.backbone, config.dim, config.max_len, train, factory)
        fit_validated(model, prep.split)
        evaluator = Evaluator(prep.split, ks=(10, 20))
        valid = evaluator.evaluate(model, "valid")
        test = evaluator.evaluate(model, "test")
        metrics = {k: test.metrics[k] for k in ("NDCG@10", "Recall@10", "NDCG@20", "Recall@20")}
        metrics.update({f"valid {k}": valid.metrics[k] for k in ("NDCG@10", "Recall@10")})
        info = {
            "has_id_table": bool(model.net_.encoder.has_id_table),
            "trainable_parameters": int(
                sum(p.numel() for p in model.net_.parameters() if p.requires_grad)
            ),
            "epochs": len(model.history_),
            "train_seconds": model.train_seconds_,
            "report": model.report(),
            "history": model.history_,
        }
        return CellResult(metrics, test.per_user[["user", METRIC, "Recall@10"]], info)

    # ------------------------------------------------------------------ summary

    def summarize(self, results: Results, folder: StudyFolder) -> Summary:
        from recfuse.studies.dff.report import dataset_report

        assert self.config is not None
        parts = [dataset_report(results, folder, self.config, ds, self.prepared[ds]) for ds in
                 self.config.datasets]  # fmt: skip
        summary = Summary(
            "\n".join(p.markdown for p in parts),
            [v for p in parts for v in p.verdicts],
            [plot for p in parts for plot in p.plots],
            {ds: p.data for ds, p in zip(self.config.datasets, parts, strict=True)},
        )
        if self.echo_report:
            self.echo(summary.markdown)
            for v in summary.verdicts:
                self.echo(f"- {v.line()}")
            self.echo(f"study folder: {folder.path}")
        return summary


def _finished(done: Results, ds: str, arm: str, seeds: list[int]) -> bool:
    return {f.cell.seed for f in done.get(ds, arm)} >= set(seeds)


def best_layer(results: Results, ds: str, kind: str, sweep: list[int]) -> int:
    """The sweep layer with the highest mean *validation* NDCG@10 (first one on a tie)."""

    def score(layer: int) -> float:
        cells = results.get(ds, f"{kind}-L{layer}")
        return float(np.mean([c.result.metrics[f"valid {METRIC}"] for c in cells]))

    scores = {layer: score(layer) for layer in sweep}
    return max(scores, key=lambda k: scores[k])


def users_note(kept: int, total: int, asked: int | None) -> str:
    """How the study's users were chosen (every eligible one, or a random sample)."""
    if asked is None or kept < asked:
        return f"all {kept} of {total} users with >= 3 interactions"
    return f"{kept} of {total} users (random, seed 0, >= 3 interactions)"


def time_cap(seconds: float | None) -> str:
    return "no time cap" if seconds is None else f"<= {seconds:.0f} s"
