"""`tune`: hyper-parameter search for a run config with Optuna (TPE + median pruning).

Selection reads validation NDCG@10 only; test targets are never scored here. The search lives in
one folder, resumable after a kill (Optuna's SQLite storage)::

    <folder>/study.db        every trial, its params and per-epoch validation scores
    <folder>/trials/NNNN.json one file per finished trial (params, valid metrics, seconds)
    <folder>/trials.csv      all trials as a table
    <folder>/best.yaml       the best config, runnable as `recfuse run best.yaml`

A search space is a YAML mapping from a config key to a distribution::

    model.params.l2: {type: float, low: 1.0, high: 10000.0, log: true}
    model.params.blocks: {type: int, low: 1, high: 3}
    model.params.dropout: {type: categorical, choices: [0.1, 0.2, 0.5]}
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from recfuse.atomic import write_json, write_text
from recfuse.errors import ConfigError
from recfuse.runs.config import RunConfig, _set_path, load_config

STUDY_NAME = "recfuse-tune"
OBJECTIVE = "NDCG@10"


class Distribution(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None


def load_space(path: str | Path) -> dict[str, Distribution]:
    """Read and check a search space; errors name the file and key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: a search space is a non-empty mapping of key -> distribution")
    space = {}
    for key, spec in raw.items():
        try:
            dist = Distribution.model_validate(spec)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"{path}: {key}.{loc}: {err['msg']}") from None
        if dist.type in ("float", "int") and (dist.low is None or dist.high is None):
            raise ConfigError(f"{path}: {key}: {dist.type} needs low and high")
        if dist.type == "categorical" and not dist.choices:
            raise ConfigError(f"{path}: {key}: categorical needs choices")
        if dist.type not in ("float", "int", "categorical"):
            raise ConfigError(f"{path}: {key}.type: {dist.type!r} is not float, int or categorical")
        space[str(key)] = dist
    return space


def suggest(trial: Any, space: dict[str, Distribution]) -> dict[str, Any]:
    """One value per key from an Optuna trial."""
    out: dict[str, Any] = {}
    for key, d in space.items():
        if d.type == "float":
            assert d.low is not None and d.high is not None
            out[key] = trial.suggest_float(key, d.low, d.high, log=d.log, step=d.step)
        elif d.type == "int":
            assert d.low is not None and d.high is not None
            step = int(d.step or 1)
            out[key] = trial.suggest_int(key, int(d.low), int(d.high), log=d.log, step=step)
        else:
            out[key] = trial.suggest_categorical(key, d.choices)
    return out


def apply(tree: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """A copy of the config tree with dotted ``params`` set (validated by `load_config`)."""
    tree = copy.deepcopy(tree)
    for key, value in params.items():
        _set_path(tree, key, value)
    return tree


@dataclass
class TuneResult:
    folder: Path
    best_value: float
    best_params: dict[str, Any]
    default_value: float | None
    trials: int

    def line(self) -> str:
        default = "" if self.default_value is None else f" (defaults: {self.default_value:.4f})"
        return (
            f"best valid {OBJECTIVE} {self.best_value:.4f}{default} over {self.trials} finished trials "
            f"with {self.best_params}; best config: {self.folder / 'best.yaml'}"
        )


def _mark_interrupted(study: Any) -> list[dict[str, Any]]:
    """Trials left RUNNING by a killed search: mark them failed, return their params to retry."""
    from optuna.trial import TrialState

    retry = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        retry.append(dict(t.params))
    return retry


def _record(folder: Path) -> Any:
    """An Optuna callback: ``trials/NNNN.json`` once a trial is stored as finished."""

    def callback(study: Any, trial: Any) -> None:
        record = {
            "number": trial.number,
            "state": trial.state.name,
            "params": trial.params,
            "value": trial.value,
            "valid": trial.user_attrs.get("valid"),
            "seconds": trial.user_attrs.get("seconds"),
        }
        write_json(folder / "trials" / f"{trial.number:04d}.json", record)

    return callback


def _objective(config_tree: dict[str, Any], space: dict[str, Distribution], state: Any) -> Any:
    import optuna

    from recfuse.evaluation import Evaluator, validation_score
    from recfuse.models import TorchRecommender
    from recfuse.runs.experiment import build_model

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, space)
        config = load_config(None, base=apply(config_tree, params))
        model = build_model(config, state.dataset)
        started = time.perf_counter()

        def on_epoch(epoch: int, score: float) -> None:
            trial.report(score, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"epoch {epoch}: valid {score:.4f} below the median")

        if isinstance(model, TorchRecommender):
            model.train_config.progress = False
            validate = validation_score(state.split, model.train_config)
            model.fit(state.split, validate=validate, on_epoch=on_epoch)
        else:
            model.fit(state.split)
        ks = tuple(sorted(set(config.eval.ks) | {10}))
        valid = Evaluator(state.split, ks=ks, batch_users=config.eval.batch_users)
        metrics = valid.evaluate(model, "valid").metrics
        seconds = time.perf_counter() - started
        trial.set_user_attr("valid", metrics)
        trial.set_user_attr("seconds", seconds)
        print(f"trial {trial.number}: valid {OBJECTIVE} {metrics[OBJECTIVE]:.4f} "
              f"in {seconds:.1f}s {params}", flush=True)  # fmt: skip
        return float(metrics[OBJECTIVE])

    return objective


@dataclass
class _State:
    dataset: Any
    split: Any


def tune(
    config_path: str | Path,
    space_path: str | Path,
    trials: int,
    folder: str | Path | None = None,
    overrides: list[str] | None = None,
    with_defaults: bool = True,
) -> TuneResult:
    """Run (or resume) a search until ``trials`` trials have finished; see the module docstring.

    Args:
        with_defaults: make the first trial the config's own values, so the result says
            whether the search beat them.
    """
    try:
        import optuna
    except ImportError:
        raise ConfigError("recfuse tune needs Optuna: pip install 'recfuse[tune]'") from None

    from recfuse.runs.experiment import build_dataset, build_split

    base = load_config(config_path, overrides)
    space = load_space(space_path)
    tree = base.model_dump()
    for key in space:  # every key must be a real config key
        load_config(None, base=apply(tree, {key: _current(tree, key, space[key])}))
    folder = Path(folder or Path(base.output) / f"tune-{base.name}")
    (folder / "trials").mkdir(parents=True, exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=STUDY_NAME,
        storage=f"sqlite:///{folder / 'study.db'}",
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=base.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=2),
        load_if_exists=True,
    )
    for params in _mark_interrupted(study):
        study.enqueue_trial(params)
    if with_defaults and not study.trials:
        study.enqueue_trial({k: _current(tree, k, space[k]) for k in space})
    dataset = build_dataset(base)
    state = _State(dataset, build_split(base, dataset))
    done = _finished(study)
    if done < trials:
        objective = _objective(tree, space, state)
        study.optimize(objective, n_trials=trials - done, callbacks=[_record(folder)])
    return _report(study, tree, space, folder, base)


def _current(tree: dict[str, Any], key: str, dist: Distribution) -> Any:
    node: Any = tree
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if node is None:
        from recfuse.runs.model_help import default_of

        node = default_of(tree["model"]["name"], key)
    if node is None:
        raise ConfigError(f"search space key {key!r}: no value in the config and no default")
    return node


def _finished(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


def _report(study: Any, tree: dict[str, Any], space: dict[str, Distribution], folder: Path,
            base: RunConfig) -> TuneResult:  # fmt: skip
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise ConfigError(f"{folder}: no trial finished; nothing to report")
    best = study.best_trial
    best_tree = apply(tree, best.params)
    best_tree["name"] = f"{base.name}-tuned"
    note = (
        f"# best of {len(complete)} finished trials by validation {OBJECTIVE} "
        f"({best.value:.4f}); written by `recfuse tune`, search in {folder}\n"
    )
    write_text(folder / "best.yaml", note + yaml.safe_dump(best_tree, sort_keys=False))
    frame = study.trials_dataframe(attrs=("number", "value", "params", "state", "duration"))
    write_text(folder / "trials.csv", frame.to_csv(index=False))
    first = study.trials[0]
    default = first.value if first.state == TrialState.COMPLETE else None
    summary = {"best_value": best.value, "best_params": best.params, "default_value": default}
    write_text(folder / "best.json", json.dumps(summary, indent=2, default=str))
    # finished trials (complete or pruned), not the failed or still-queued ones
    return TuneResult(folder, float(best.value), dict(best.params), default, _finished(study))
