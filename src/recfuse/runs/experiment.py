"""`Experiment`: fit several models on one split and evaluate them the same way, in one call.

    table = Experiment(split, [Pop(), EASE(), SASRec()]).run()

and `run_config`, which does the same from a validated `RunConfig` and writes a run folder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from recfuse.data import (
    Dataset,
    filter_min_rating,
    k_core,
    load_dataset,
    load_interactions_file,
)
from recfuse.data.fingerprint import dataset_fingerprint
from recfuse.data.ids import IdMaps
from recfuse.errors import ConfigError
from recfuse.evaluation import EvalResult, Evaluator, fit_validated
from recfuse.models import MODELS, Recommender, SequentialRecommender, TorchRecommender, TrainConfig
from recfuse.models.encoder_spec import FeatureEncoderFactory, check_spec
from recfuse.models.saving import constructor_parameters
from recfuse.runs.config import RunConfig
from recfuse.runs.folder import RunFolder, metrics_markdown
from recfuse.split import Split, make_split


@dataclass
class ModelResult:
    name: str
    valid: EvalResult
    test: EvalResult
    fit_seconds: float
    params: dict[str, Any] = field(default_factory=dict)

    def row(self, metrics: tuple[str, ...] | None = None) -> dict[str, Any]:
        """Table row; default columns at K = 10, or the smallest cut-off evaluated without 10."""
        if metrics is None:
            k = headline_k(self.test.metrics)
            metrics = (f"NDCG@{k}", f"Recall@{k}", "MRR", f"Coverage@{k}")
        row: dict[str, Any] = {"model": self.name, "protocol": self.test.protocol}
        row.update({f"valid {m}": self.valid.metrics.get(m, np.nan) for m in metrics[:1]})
        row.update({m: self.test.metrics.get(m, np.nan) for m in metrics})
        row["fit s"] = round(self.fit_seconds, 1)
        row["eval s"] = round(self.test.seconds, 1)
        return row


def headline_k(metrics: dict[str, float]) -> int:
    """The cut-off tables lead with: 10 when it was evaluated, else the smallest one."""
    ks = sorted({int(m.rsplit("@", 1)[1]) for m in metrics if "@" in m})
    return 10 if 10 in ks or not ks else ks[0]


class Experiment:
    """Fit each model on ``split`` and evaluate on validation and test with one `Evaluator`."""

    def __init__(
        self,
        split: Split,
        models: list[Recommender],
        evaluator: Evaluator | None = None,
        verbose: bool = True,
    ) -> None:
        self.split = split
        self.models = models
        self.evaluator = evaluator or Evaluator(split)
        self.verbose = verbose
        self.results: list[ModelResult] = []

    def run(self, run: RunFolder | None = None) -> pd.DataFrame:
        for model in self.models:
            start = time.perf_counter()
            fit_validated(model, self.split)  # early stopping on validation only
            fit_s = time.perf_counter() - start
            valid = self.evaluator.evaluate(model, "valid")
            test = self.evaluator.evaluate(model, "test")
            result = ModelResult(model.name, valid, test, fit_s, model.get_params())
            self.results.append(result)
            if self.verbose:
                head = f"NDCG@{headline_k(test.metrics)}"  # eval.ks may lack 10
                print(
                    f"{model.name}: test {head} {test.metrics[head]:.4f}  fit {fit_s:.1f}s",
                    flush=True,
                )
            if run is not None:
                slug = model.name.lower()
                run.write_frame(f"per_user_test_{slug}.parquet", test.per_user)
                run.write_text(
                    f"slices_{slug}.md",
                    metrics_markdown(test.slices.reset_index(names="slice").to_dict("records")),
                )
                run.log(f"{model.name}: fit {fit_s:.1f}s valid {valid.metrics} test {test.metrics}")
        table = pd.DataFrame([r.row() for r in self.results])
        if run is not None:
            run.write_json(
                "metrics.json",
                {
                    r.name: {
                        "valid": r.valid.metrics,
                        "test": r.test.metrics,
                        "protocol": r.test.protocol,
                        "fit_seconds": r.fit_seconds,
                        "params": r.params,
                    }
                    for r in self.results
                },
            )
            run.write_text("metrics.md", metrics_markdown(table.to_dict("records")))
        return table


def build_dataset(config: RunConfig) -> Dataset:
    data = config.data
    if data.file is not None:
        f = data.file
        dataset = load_interactions_file(
            f.path,
            user_col=f.user_col,
            item_col=f.item_col,
            time_col=f.time_col,
            rating_col=f.rating_col,
            min_rating=data.min_rating,
            duplicates=f.duplicates,
            items_path=f.items_path,
            item_id_col=f.item_id_col,
            text_fields=tuple(f.text_fields),
        )
    else:
        assert data.name is not None
        dataset = load_dataset(data.name, data.data_dir)
        if data.min_rating is not None:
            dataset = filter_min_rating(dataset, data.min_rating)
    if data.k_core:
        dataset = k_core(dataset, data.k_core, data.k_core)
    return dataset


def build_model(config: RunConfig, dataset: Dataset | None = None) -> Recommender:
    """The configured model, unfitted. ``model.encoder`` is checked here and resolved through
    the FeatureStore (extracting missing features) only when ``dataset`` is given."""
    name = config.model.name.lower()
    if name not in MODELS:
        raise ConfigError(
            f"model.name: unknown model {config.model.name!r}; known: {', '.join(MODELS)}"
        )
    cls = MODELS[name]
    params = dict(config.model.params)
    accepted = _init_parameters(cls)
    for key in params:
        if key not in accepted:
            raise ConfigError(
                f"model.params.{key}: unknown parameter of {cls.__name__} (known: {', '.join(sorted(accepted))})"
            )
    encoder = config.model.encoder
    if encoder is not None:
        if not issubclass(cls, SequentialRecommender):
            raise ConfigError(f"model.encoder: only sequential models take one, not {cls.__name__}")
        features = [encoder.features] if isinstance(encoder.features, str) else encoder.features
        check_spec(encoder.kind, list(features), encoder.mode)
        if dataset is not None:
            params["encoder"] = FeatureEncoderFactory.resolve(
                encoder.kind, features, encoder.mode, dataset
            )
    if issubclass(cls, TorchRecommender):
        train = TrainConfig(**config.train.model_dump(), seed=config.seed)
        return cls(train=train, **params)
    return cls(**params)


def _init_parameters(cls: type) -> set[str]:
    return set(constructor_parameters(cls)) - {"train", "encoder"}


def build_split(config: RunConfig, dataset: Dataset) -> Split:
    """The configured split of ``dataset`` (deterministic under ``config.seed``)."""
    split_params = {
        k: v for k, v in config.split.model_dump().items() if k != "protocol" and v is not None
    }
    return make_split(dataset, config.split.protocol, seed=config.seed, **split_params)


def run_config(config: RunConfig) -> Path:
    """Run one experiment from a config; return the run folder."""
    if config.threads:
        torch.set_num_threads(config.threads)
    model = build_model(config)  # fail on a bad model section before any data work
    dataset = build_dataset(config)
    if config.model.encoder is not None:
        model = build_model(config, dataset)  # resolve (extract) the encoder's features
    split = build_split(config, dataset)
    negatives = config.eval.sampled_negatives
    if negatives is not None and negatives >= split.n_items:
        raise ConfigError(
            f"eval.sampled_negatives: {negatives} negatives need more than {split.n_items} items"
            " (the catalogue's size); leave it unset for full ranking"
        )
    users = None
    if config.eval.max_users:
        candidates = np.unique(split.test["user"].to_numpy())
        if config.eval.max_users < len(candidates):
            users = np.random.default_rng(config.seed).choice(
                candidates, config.eval.max_users, replace=False
            )
    evaluator = Evaluator(
        split,
        ks=tuple(config.eval.ks),
        batch_users=config.eval.batch_users,
        sampled_negatives=config.eval.sampled_negatives,
        seed=config.seed,
        users=users,
    )
    with RunFolder(config.output, config.name) as run:
        run.write_config(config.model_dump())
        run.write_json(
            "dataset.json", {**dataset.stats(), "fingerprint": dataset_fingerprint(dataset)}
        )
        split.save(run.path / "split")
        ids = IdMaps.from_dataset(dataset)
        ids.save(run.path / "ids")
        table = Experiment(split, [model], evaluator).run(run)
        # the loadable model: model.json + weights.safetensors, pointing to ../split and ../ids
        model.save(run.path / "model", split_dir=run.path / "split", ids_dir=run.path / "ids")
        if isinstance(model, TorchRecommender):
            run.write_json("training_history.json", model.history_)
        if users is not None:
            run.write_json(
                "eval_subsample.json",
                {"users": len(users), "note": "test users subsampled by eval.max_users"},
            )
        print(table.to_string(index=False))
    print(f"run folder: {run.path}")
    return Path(run.path)
