"""The one study skeleton: a study declares its config, its cells and how to run one cell.

A study answers a paper's question by running many cells — arm × seed × dataset — and comparing
them. Everything that is the same in every study lives here, once:

* the study folder: resolved config, package versions, one file per finished cell (written
  atomically, so a kill loses only the cells that were running), ``results.md`` / ``results.json``;
* resume keyed by content: a cell's key hashes the study's code version, every config field that
  can change a result (the training budget included), the cell itself and the study's own input
  fingerprints (data, split, features). A rerun reuses exactly the cells whose key is unchanged —
  change the budget and they are recomputed, never relabelled;
* parallel workers (forked processes, each with its own thread count) that receive the whole
  config, the device included;
* tables of mean ± std over seeds, paired tests on per-user metrics against a named reference with
  Holm correction across arms, and verdicts that say "holds" only with ≥ 3 seeds and a
  significant difference in the claimed direction.

A new study is a thin script::

    class MyConfig(StudyConfig):
        arms: list[str] = ["id", "text"]

    class MyStudy(Study[MyConfig]):
        name, config_type = "mine", MyConfig

        def cells(self, config, done):
            return [Cell(arm, seed, ds) for ds in config.datasets
                    for arm in config.arms for seed in config.seeds]

        def run_cell(self, cell, ctx):
            ...  # train and evaluate one model
            return CellResult(metrics, per_user=frame, info={"epochs": n})

        def summarize(self, results, folder):
            cmp = results.compare("ml-100k", "text", "id", "NDCG@10")
            return Summary(results.markdown(["NDCG@10"]), [verdict("text > id", cmp)])

    run_study(MyStudy(), load_study_config(MyStudy, overrides=["seeds=[0,1,2]"]))

``docs/architecture.md`` walks through a complete example.
"""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import itertools
import json
import multiprocessing
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from recfuse import atomic
from recfuse.errors import ConfigError, RecfuseError
from recfuse.evaluation.significance import PairedTest, holm, paired_arrays
from recfuse.models.training import TrainConfig
from recfuse.provenance import git_commit, package_versions
from recfuse.runs.config import load_layered

# ----------------------------------------------------------------------------- config and cells


class StudyConfig(BaseModel):
    """Fields every study has. A study's config subclasses this and adds its own fields.

    ``train`` is the one definition of the optimisation budget (`TrainConfig`); a study never
    copies its fields. Budgets are epochs with early stopping on validation.
    """

    model_config = ConfigDict(extra="forbid")

    datasets: list[str] = Field(default_factory=lambda: ["ml-100k"], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    train: TrainConfig = Field(default_factory=TrainConfig)
    workers: int = Field(1, ge=1, le=32, description="cells run in parallel (forked processes)")
    threads: int = Field(1, ge=1, le=256, description="torch threads per worker")
    output: str = Field("runs", description="folder that holds the study folder")
    folder: str | None = Field(None, description="study folder (default: output/<study>-<hash>)")

    #: fields that say how to run, not what is computed: left out of every cell's key
    EXECUTION_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {"datasets", "seeds", "workers", "threads", "output", "folder"}
    )
    #: `TrainConfig` fields that never change a result
    EXECUTION_TRAIN_FIELDS: ClassVar[frozenset[str]] = frozenset({"progress", "checkpoint", "seed"})

    def result_fields(self) -> dict[str, Any]:
        """The config as JSON, without execution-only fields: what a cell's result depends on."""
        tree = self.model_dump(mode="json", exclude=set(self.EXECUTION_FIELDS))
        tree["train"] = {
            k: v for k, v in tree["train"].items() if k not in self.EXECUTION_TRAIN_FIELDS
        }
        return tree


ConfigT = TypeVar("ConfigT", bound=StudyConfig)


@dataclass(frozen=True)
class Cell:
    """One unit of work. ``arm`` is a name or a typed arm (a frozen dataclass or pydantic model
    with a ``name`` field); its fields are part of the cell's key."""

    arm: Any
    seed: int
    dataset: str

    @property
    def arm_name(self) -> str:
        if isinstance(self.arm, str):
            return self.arm
        if isinstance(self.arm, dict):  # a typed arm read back from JSON
            return str(self.arm["name"])
        return str(self.arm.name)

    def as_json(self) -> dict[str, Any]:
        arm = _jsonable(self.arm)
        if isinstance(arm, dict):  # a typed arm: keep its (derived) name next to its fields
            arm = {"name": self.arm_name, **arm}
        return {"arm": arm, "seed": self.seed, "dataset": self.dataset}

    def label(self) -> str:
        return f"{self.dataset}/{self.arm_name}/seed{self.seed}"


def fingerprint(*parts: Any) -> str:
    """A short content hash of arrays, frames and JSON-able values (for `Study.inputs`)."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, pd.DataFrame):
            try:
                hashed = pd.util.hash_pandas_object(part, index=False)
            except TypeError:  # unhashable cells (lists): hash their text
                hashed = pd.util.hash_pandas_object(part.astype(str), index=False)
            digest.update(hashed.to_numpy().tobytes())
            digest.update(json.dumps(list(map(str, part.columns))).encode())
        elif isinstance(part, np.ndarray):
            digest.update(str((part.dtype, part.shape)).encode())
            digest.update(np.ascontiguousarray(part).tobytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


@dataclass
class CellResult:
    """What one cell produced.

    ``metrics``: test metrics (and any other scalar) by name. ``per_user``: a frame with a
    ``user`` column and one column per metric, for paired tests. ``info``: JSON-able extras
    (epochs run, best validation score, seconds, coverage...).
    """

    metrics: dict[str, float]
    per_user: pd.DataFrame | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Finished:
    """A cell with its key and result, as read back from the study folder."""

    cell: Cell
    key: str
    result: CellResult


@dataclass
class CellContext:
    """What `Study.run_cell` gets besides the cell: the config, the folder, a logger."""

    config: StudyConfig
    folder: StudyFolder
    key: str

    @property
    def device(self) -> str:
        return self.config.train.device

    def train_config(self, seed: int, **changes: Any) -> TrainConfig:
        """The study's `TrainConfig` with this cell's seed (and any per-arm changes)."""
        return dataclasses.replace(self.config.train, seed=seed, **changes)

    def log(self, message: str) -> None:
        self.folder.log(message)


@dataclass
class Summary:
    """What a study concludes: Markdown for ``results.md``, verdicts, plots written, extra data."""

    markdown: str
    verdicts: list[Verdict] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- the study


class Study(ABC, Generic[ConfigT]):
    """Subclass with ``name``, ``config_type``, `cells`, `run_cell` and `summarize`."""

    name: ClassVar[str]
    config_type: ClassVar[type[StudyConfig]]
    #: bump when a code change alters what a cell computes (old cells then stop matching)
    version: ClassVar[int] = 1
    #: named partial configs, e.g. {"fast": {"train": {"epochs": 20}}}
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def prepare(self, config: ConfigT, folder: StudyFolder) -> None:  # noqa: B027
        """Work shared by all cells, done once before any worker starts (e.g. extraction)."""

    def inputs(self, cell: Cell, config: ConfigT) -> dict[str, Any]:
        """Fingerprints of what the cell reads besides the config (data, split, features)."""
        return {}

    @abstractmethod
    def cells(self, config: ConfigT, done: Results) -> list[Cell]:
        """Every cell of the study. Called again after each round with the finished cells, so
        a later stage may depend on an earlier one (e.g. the best layer by validation)."""

    @abstractmethod
    def run_cell(self, cell: Cell, ctx: CellContext) -> CellResult:
        """Run one cell. Must not read test-period data for any decision."""

    @abstractmethod
    def summarize(self, results: Results, folder: StudyFolder) -> Summary:
        """Tables, verdicts and plots from the finished cells."""

    def cell_key(self, cell: Cell, config: ConfigT) -> str:
        """Content hash of everything that can change this cell's result."""
        payload = {
            "study": self.name,
            "version": self.version,
            "config": config.result_fields(),
            "cell": cell.as_json(),
            "inputs": self.inputs(cell, config),
        }
        blob = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:20]


def load_study_config(
    study: type[Study[Any]] | Study[Any],
    preset: str | None = None,
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    options: Mapping[str, Any] | None = None,
) -> Any:
    """defaults ← preset ← YAML ← ``--set key=value`` ← explicit CLI options (not None)."""
    base: dict[str, Any] = {}
    if preset is not None:
        if preset not in study.presets:
            known = ", ".join(sorted(study.presets)) or "none"
            raise ConfigError(f"--preset {preset!r}: unknown preset (known: {known})")
        base = json.loads(json.dumps(study.presets[preset]))
    sets = list(overrides or [])
    for key, value in (options or {}).items():
        if value is not None:
            sets.append(f"{key}={json.dumps(value)}")
    return load_layered(study.config_type, path, sets, base)


# ----------------------------------------------------------------------------- the folder


class StudyFolder:
    """A study's persistent folder. Finished cells live in ``cells/<key>.json`` (+ ``.parquet``)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.cells_dir = self.path / "cells"

    def write_config(self, study: Study[Any], config: StudyConfig) -> None:
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        tree = {"study": study.name, "version": study.version, **config.model_dump(mode="json")}
        atomic.write_text(self.path / "config.yaml", yaml.safe_dump(tree, sort_keys=False))
        atomic.write_json(
            self.path / "versions.json", {**package_versions(), "git_commit": git_commit()}
        )

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Refuse a second process working on the same folder (two writers would race)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RecfuseError(f"{self.path}: another process is running this study") from None
            for stale in self.cells_dir.glob(".*.tmp"):  # left by a kill -9 mid-write
                stale.unlink(missing_ok=True)
            yield

    def log(self, message: str) -> None:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        with open(self.path / "log.txt", "a", encoding="utf-8") as handle:
            handle.write(f"{stamp} {message}\n")

    def read(self, key: str) -> Finished | None:
        """The finished cell with this key, or None (also for a damaged file: it reruns)."""
        meta = self.cells_dir / f"{key}.json"
        if not meta.exists():
            return None
        try:
            blob = json.loads(meta.read_text(encoding="utf-8"))
            per_user = None
            if blob.get("per_user"):
                per_user = pd.read_parquet(self.cells_dir / f"{key}.parquet")
        except (OSError, ValueError):
            return None
        c = blob["cell"]
        cell = Cell(c["arm"], int(c["seed"]), c["dataset"])
        return Finished(cell, key, CellResult(blob["metrics"], per_user, blob.get("info", {})))

    def write(self, cell: Cell, key: str, result: CellResult, seconds: float) -> None:
        """Per-user frame first, then the JSON: a cell counts as done once its JSON exists."""
        if result.per_user is not None:
            with atomic.atomic_path(self.cells_dir / f"{key}.parquet") as tmp:
                result.per_user.to_parquet(tmp, index=False)
        blob = {
            "cell": cell.as_json(),
            "metrics": {k: float(v) for k, v in result.metrics.items()},
            "info": {**result.info, "seconds": round(seconds, 3)},
            "per_user": result.per_user is not None,
        }
        atomic.write_json(self.cells_dir / f"{key}.json", blob)


def default_folder(study: Study[Any], config: StudyConfig) -> Path:
    """``output/<study>-<hash of the result fields and datasets>``: same config, same folder."""
    if config.folder:
        return Path(config.folder)
    tree = {"fields": config.result_fields(), "datasets": config.datasets, "v": study.version}
    digest = hashlib.sha256(json.dumps(tree, sort_keys=True).encode()).hexdigest()[:8]
    return Path(config.output) / f"{study.name}-{'-'.join(config.datasets)}-{digest}"


# ----------------------------------------------------------------------------- running


def run_study(study: Study[Any], config: StudyConfig, progress: bool = True) -> Summary:
    """Run every unfinished cell, round by round, then summarize. Resumes where it stopped."""
    folder = StudyFolder(default_folder(study, config))
    with folder.lock():
        folder.write_config(study, config)
        folder.log(f"start {study.name}: {len(config.seeds)} seed(s), {config.workers} worker(s)")
        study.prepare(config, folder)
        finished: dict[str, Finished] = {}
        asked: list[str] | None = None
        while True:
            wanted = study.cells(config, Results(list(finished.values())))
            keyed = [(study.cell_key(c, config), c) for c in wanted]
            _load_done(folder, keyed, finished)
            todo = [(k, c) for k, c in keyed if k not in finished]
            if not todo:
                # cells read back from disk may unlock a later stage: ask again until stable
                keys = [k for k, _ in keyed]
                if keys == asked:
                    break
                asked = keys
                continue
            typed = dict(todo)
            for key in _execute(study, config, folder, todo, progress):
                done = folder.read(key)
                if done is None:
                    raise RecfuseError(f"{folder.cells_dir}: cell {key} vanished after it ran")
                finished[key] = Finished(typed[key], key, done.result)  # keep the typed arm
        results = Results([finished[k] for k, _ in keyed])
        summary = study.summarize(results, folder)
        _write_summary(folder, results, summary)
    return summary


def _load_done(
    folder: StudyFolder, keyed: list[tuple[str, Cell]], into: dict[str, Finished]
) -> None:
    for key, cell in keyed:
        if key not in into and (done := folder.read(key)) is not None:
            into[key] = Finished(cell, key, done.result)  # keep the typed arm


def _execute(
    study: Study[Any],
    config: StudyConfig,
    folder: StudyFolder,
    todo: list[tuple[str, Cell]],
    progress: bool,
) -> Iterator[str]:
    bar = tqdm(total=len(todo), desc=f"study {study.name}", disable=not progress)
    try:
        if config.workers == 1 or len(todo) == 1:
            for key, cell in todo:
                yield _run_one(study, config, folder, key, cell)
                bar.update()
            return
        # fork: the children inherit the study with its prepared state (features in memory)
        # through this module's globals, so nothing large is pickled per cell
        _FORKED.update(study=study, config=config, folder=folder)
        ctx = multiprocessing.get_context("fork")
        workers = min(config.workers, len(todo))
        queue = iter(todo)
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            # One cell per worker in flight, the next submitted as one ends: on Ctrl-C, SIGINT
            # or a failed cell nothing is queued behind the running cells (a pool given every
            # cell up front runs them all before it lets the interrupt through).
            running = {pool.submit(_run_forked, k, c) for k, c in itertools.islice(queue, workers)}
            while running:
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    yield future.result()
                    bar.update()
                    following = next(queue, None)
                    if following is not None:
                        running.add(pool.submit(_run_forked, *following))
    finally:
        _FORKED.clear()
        bar.close()


_FORKED: dict[str, Any] = {}


def _run_forked(key: str, cell: Cell) -> str:
    """Worker body: the study, config and folder were inherited at fork; only the cell came."""
    return _run_one(_FORKED["study"], _FORKED["config"], _FORKED["folder"], key, cell)


def _run_one(
    study: Study[Any], config: StudyConfig, folder: StudyFolder, key: str, cell: Cell
) -> str:
    import torch

    torch.set_num_threads(config.threads)
    started = time.perf_counter()
    folder.log(f"cell {cell.label()} ({key}) started")
    result = study.run_cell(cell, CellContext(config, folder, key))
    seconds = time.perf_counter() - started
    folder.write(cell, key, result, seconds)
    folder.log(f"cell {cell.label()} ({key}) finished in {seconds:.1f}s")
    return key


def _write_summary(folder: StudyFolder, results: Results, summary: Summary) -> None:
    lines = [summary.markdown.rstrip(), ""]
    if summary.verdicts:
        lines += ["## Verdicts", "", *(f"- {v.line()}" for v in summary.verdicts), ""]
    atomic.write_text(folder.path / "results.md", "\n".join(lines) + "\n")
    atomic.write_json(
        folder.path / "results.json",
        {
            "cells": results.frame().to_dict("records"),
            "verdicts": [dataclasses.asdict(v) for v in summary.verdicts],
            "plots": summary.plots,
            "data": summary.data,
        },
    )
    folder.log(f"summary written: {len(results.cells)} cells, {len(summary.verdicts)} verdicts")


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Comparison:
    """``arm`` against ``reference`` on one dataset: per-user metric averaged over the seeds both
    arms finished, then a paired test over users. ``p`` is Holm-adjusted when it came from
    `Results.compare_all`."""

    dataset: str
    arm: str
    reference: str
    metric: str
    seeds: tuple[int, ...]
    test: PairedTest
    p: float
    units: str = "users"  # what the paired test pairs over (XAI pairs metric × judge units)

    @property
    def n_seeds(self) -> int:
        return len(self.seeds)

    def line(self) -> str:
        t = self.test
        return (
            f"{self.arm} vs {self.reference} on {self.dataset}, {self.metric}: "
            f"{t.mean_a:.4f} vs {t.mean_b:.4f} (diff {t.diff:+.4f}, {t.n_users} {self.units}, "
            f"{self.n_seeds} seed(s), p={self.p:.3g})"
        )


class Results:
    """The finished cells of a study, with the statistics every study needs."""

    def __init__(self, cells: list[Finished]) -> None:
        self.cells = cells

    def __len__(self) -> int:
        return len(self.cells)

    def frame(self) -> pd.DataFrame:
        """One row per cell: dataset, arm, seed, every metric and info field."""
        rows = [
            {
                "dataset": f.cell.dataset,
                "arm": f.cell.arm_name,
                "seed": f.cell.seed,
                **f.result.metrics,
                **{k: v for k, v in f.result.info.items() if _scalar(v)},
            }
            for f in self.cells
        ]
        return pd.DataFrame(rows)

    def get(self, dataset: str, arm: str) -> list[Finished]:
        """The finished cells of one arm on one dataset, by seed."""
        found = [f for f in self.cells if f.cell.dataset == dataset and f.cell.arm_name == arm]
        return sorted(found, key=lambda f: f.cell.seed)

    def table(self, metrics: Sequence[str], by: Sequence[str] = ("dataset", "arm")) -> pd.DataFrame:
        """Mean, std (ddof 1; 0 with one seed) and seed count of each metric per group."""
        frame = self.frame()
        if frame.empty:
            return pd.DataFrame(columns=[*by, "seeds"])
        groups = frame.groupby(list(by), sort=False)
        out = groups.size().rename("seeds").reset_index()
        for m in metrics:
            agg = groups[m].agg(["mean", "std"]).reset_index(drop=True).fillna({"std": 0.0})
            out[f"{m} mean"], out[f"{m} std"] = agg["mean"].to_numpy(), agg["std"].to_numpy()
        return out

    def markdown(self, metrics: Sequence[str], by: Sequence[str] = ("dataset", "arm")) -> str:
        """`table` as Markdown: ``mean ± std`` cells and the seed count, std over seeds."""
        table = self.table(metrics, by)
        header = [*by, *metrics, "seeds"]
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        for _, row in table.iterrows():
            cells = [str(row[b]) for b in by]
            cells += [mean_std(row[f"{m} mean"], row[f"{m} std"]) for m in metrics]
            lines.append("| " + " | ".join([*cells, str(int(row["seeds"]))]) + " |")
        return "\n".join(lines) + "\n\n(mean ± std over seeds)\n"

    def per_user(self, dataset: str, arm: str, seeds: Sequence[int] | None = None) -> pd.DataFrame:
        """Per-user metrics of one arm averaged over ``seeds`` (default: all it finished)."""
        frames = []
        for f in self.get(dataset, arm):
            if seeds is not None and f.cell.seed not in seeds:
                continue
            if f.result.per_user is None:
                raise RecfuseError(f"{dataset}/{arm}/seed{f.cell.seed} saved no per-user results")
            frames.append(f.result.per_user)
        if not frames:
            raise RecfuseError(f"no finished cells for {dataset}/{arm}")
        return pd.concat(frames).groupby("user", as_index=False).mean(numeric_only=True)

    def compare(self, dataset: str, arm: str, reference: str, metric: str) -> Comparison:
        """Paired test of ``arm`` against ``reference`` over users, on the seeds both finished."""
        seeds = sorted(
            {f.cell.seed for f in self.get(dataset, arm)}
            & {f.cell.seed for f in self.get(dataset, reference)}
        )
        if not seeds:
            raise RecfuseError(f"{dataset}: {arm} and {reference} share no finished seed")
        a = self.per_user(dataset, arm, seeds)
        b = self.per_user(dataset, reference, seeds)
        joined = a[["user", metric]].merge(b[["user", metric]], on="user", suffixes=("_a", "_b"))
        test = paired_arrays(
            joined[f"{metric}_a"].to_numpy(), joined[f"{metric}_b"].to_numpy(), metric
        )
        return Comparison(dataset, arm, reference, metric, tuple(seeds), test, test.t_pvalue)

    def compare_all(
        self, dataset: str, arms: Sequence[str], reference: str, metric: str
    ) -> list[Comparison]:
        """`compare` for each arm against one reference, p-values Holm-adjusted across arms."""
        return self.compare_pairs(dataset, [(arm, reference) for arm in arms], metric)

    def compare_pairs(
        self, dataset: str, pairs: Sequence[tuple[str, str]], metric: str
    ) -> list[Comparison]:
        """`compare` for each (arm, reference) pair, p-values Holm-adjusted across the pairs
        (one family: e.g. every comparison behind one claim)."""
        raw = [self.compare(dataset, arm, reference, metric) for arm, reference in pairs]
        adjusted = holm([c.test.t_pvalue for c in raw])
        return [dataclasses.replace(c, p=p) for c, p in zip(raw, adjusted, strict=True)]


def _scalar(value: Any) -> bool:
    return isinstance(value, int | float | str | bool) or value is None


def mean_std(mean: float, std: float, digits: int = 4) -> str:
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def span(values: Any, digits: int = 0) -> str:
    """``lo–hi`` of the non-NaN values as printed (one number when they print alike; – if none)."""
    kept = [float(v) for v in values if v == v]
    if not kept:
        return "–"
    lo, hi = f"{min(kept):.{digits}f}", f"{max(kept):.{digits}f}"
    return lo if lo == hi else f"{lo}–{hi}"


# ----------------------------------------------------------------------------- verdicts

MIN_SEEDS = 3


@dataclass(frozen=True)
class Verdict:
    """A claim and what the statistics say of it."""

    claim: str
    status: str  # "holds" | "does not hold" | "not tested: N seed(s)"
    evidence: str

    def line(self) -> str:
        return f"**{self.claim}**: {self.status} — {self.evidence}"


def verdict(
    claim: str,
    comparison: Comparison,
    direction: Literal["greater", "less"] = "greater",
    alpha: float = 0.05,
    min_seeds: int = MIN_SEEDS,
) -> Verdict:
    """ "holds" only with ≥ ``min_seeds`` seeds, p < ``alpha`` and the difference in the claimed
    direction; "not tested" with fewer seeds; otherwise "does not hold"."""
    evidence = comparison.line()
    if comparison.n_seeds < min_seeds:
        return Verdict(claim, f"not tested: {comparison.n_seeds} seed(s)", evidence)
    sign = np.sign(comparison.test.diff) * (1 if direction == "greater" else -1)
    holds = comparison.p < alpha and sign > 0
    return Verdict(claim, "holds" if holds else "does not hold", evidence)


# ----------------------------------------------------------------------------- plots


def bar_plot(
    table: pd.DataFrame,
    metric: str,
    path: str | Path,
    title: str,
    group: str = "arm",
) -> Path:
    """Bars of ``metric`` mean per ``group`` (one panel per dataset), error bars = std over seeds.

    ``table`` is `Results.table` output. The legend sits outside the axes so it never covers data.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = list(dict.fromkeys(table["dataset"])) if "dataset" in table else [""]
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(4.5 * len(datasets) + 1, 3.6), squeeze=False
    )
    for ax, ds in zip(axes[0], datasets, strict=True):
        rows = table[table["dataset"] == ds] if ds else table
        x = np.arange(len(rows))
        ax.bar(x, rows[f"{metric} mean"], yerr=rows[f"{metric} std"], capsize=3, color="#4c72b0")
        ax.set_xticks(x, rows[group], rotation=35, ha="right", fontsize=8)
        ax.set_title(ds or title, fontsize=10)
        ax.set_ylabel(metric)
    fig.suptitle(f"{title} (error bars: std over seeds)", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120, format=path.suffix.lstrip(".") or "png")
    plt.close(fig)
    return path


__all__ = [
    "Cell",
    "CellContext",
    "CellResult",
    "Comparison",
    "Finished",
    "Results",
    "Study",
    "StudyConfig",
    "StudyFolder",
    "Summary",
    "Verdict",
    "bar_plot",
    "fingerprint",
    "load_study_config",
    "mean_std",
    "span",
    "run_study",
    "verdict",
]
