"""Run configuration: layered (defaults ← YAML file ← ``--set key=value``), validated by pydantic.

Unknown keys and bad values are errors that name the key, e.g. ``model.paramz: unknown key``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from recfuse.errors import ConfigError
from recfuse.models.training import TrainConfig
from recfuse.sections import section_of

M = TypeVar("M", bound=BaseModel)

#: a run or output name: one path component, no "..", no separators (it names a folder)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
#: metrics the `Evaluator` computes at each cut-off K (plus MRR, which has none)
RANKING_METRICS = ("NDCG", "Recall", "Hit", "Precision")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FileSource(Section):
    """A user's own interactions file and optional item table."""

    path: str
    user_col: str = "user_id"
    item_col: str = "item_id"
    time_col: str | None = "timestamp"
    rating_col: str | None = "rating"
    duplicates: Literal["error", "first", "last"] = "error"
    items_path: str | None = None
    item_id_col: str | None = None
    text_fields: list[str] = Field(default_factory=list)


class DataConfig(Section):
    name: str | None = None
    data_dir: str | None = None
    file: FileSource | None = None
    k_core: int | None = Field(default=None, ge=1, le=1000)
    # explicit feedback: keep rows rated >= this as positives (a finite number)
    min_rating: float | None = Field(default=None, allow_inf_nan=False)


class SplitConfig(Section):
    protocol: Literal["leave_one_out", "temporal", "ratio", "group_disjoint"] = "leave_one_out"
    valid_frac: float | None = Field(default=None, gt=0.0, lt=1.0)
    test_frac: float | None = Field(default=None, gt=0.0, lt=1.0)
    column: str | None = None


class EncoderConfig(Section):
    """Item encoder of a sequential model: ``id``, or frozen features from the FeatureStore."""

    kind: Literal["id", "replace", "fusion", "dff"] = "id"
    features: list[str] | str = Field(default_factory=list)
    mode: Literal["concat", "sum", "gate"] = "gate"


class ModelConfig(Section):
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    encoder: EncoderConfig | None = None


class TrainSection(section_of(TrainConfig, "TrainSection", exclude={"seed"}, base=Section)):  # type: ignore[misc]
    """The ``train:`` section: the fields of `TrainConfig` (their one definition, bounds
    included) except ``seed``, which is the run's top-level ``seed``."""

    @field_validator("valid_metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        check_metric_name(value)
        return value

    def build(self, seed: int) -> TrainConfig:
        return TrainConfig(**self.model_dump(), seed=seed)


class EvalConfig(Section):
    ks: list[Annotated[int, Field(ge=1, le=10_000)]] = Field(
        default_factory=lambda: [5, 10, 20], min_length=1, max_length=32
    )
    batch_users: int = Field(default=1024, ge=1, le=1_000_000)
    sampled_negatives: int | None = Field(default=None, ge=1, le=1_000_000)
    max_users: int | None = Field(default=None, ge=1)

    @field_validator("ks")
    @classmethod
    def _distinct(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"cut-offs must be distinct, got {value}")
        return sorted(value)


class RunConfig(Section):
    name: str = Field(default="run", pattern=NAME_PATTERN)
    seed: int = Field(default=0, ge=0, le=2**32 - 1)
    threads: int | None = Field(default=None, ge=1, le=256)
    data: DataConfig
    split: SplitConfig = Field(default_factory=SplitConfig)
    model: ModelConfig
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    output: str = Field(default="runs", min_length=1)


def check_metric_name(name: str) -> None:
    """Raise ValueError unless ``name`` is a metric the `Evaluator` can compute (``NDCG@10``...)."""
    base, sep, k = name.partition("@")
    if name == "MRR" or (sep and base in RANKING_METRICS and k.isdigit() and int(k) >= 1):
        return
    known = ", ".join(f"{m}@K" for m in RANKING_METRICS)
    raise ValueError(f"{name!r} is not a ranking metric ({known} or MRR)")


def _format_error(exc: ValidationError, source: str) -> str:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return f"{source}: {key}: unknown key"
    if err["type"] == "missing":
        return f"{source}: {key}: required key is missing"
    return f"{source}: {key}: {err['msg']}"


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {dotted}: {part} is not a section")
    node[parts[-1]] = value


def load_layered(
    model_type: type[M],
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    base: dict[str, Any] | None = None,
) -> M:
    """defaults ← ``base`` ← YAML file ← ``key=value`` overrides (parsed as YAML), validated.

    The one config loader: run configs and study configs both come through here, so every
    error has the same shape (``source: dotted.key: message``).
    """
    tree: dict[str, Any] = _deep_copy(base or {})
    source = "config"
    if path is not None:
        source = str(path)
        _deep_merge(tree, _read_yaml(Path(path)))
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r}: expected key=value")
        try:
            value = yaml.safe_load(raw)
        except (yaml.YAMLError, RecursionError):
            raise ConfigError(f"--set {item!r}: the value is not valid YAML") from None
        _set_path(tree, key.strip(), value)
    try:
        return model_type.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, source)) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a YAML file") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: invalid YAML") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply") from None
    if loaded is None:
        raise ConfigError(f"{path}: empty config")
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: the top level must be a mapping")
    return loaded


def _deep_copy(tree: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in tree.items()}


def _deep_merge(into: dict[str, Any], layer: dict[str, Any]) -> None:
    """Merge ``layer`` into ``into``: sections merge key by key, other values replace."""
    for key, value in layer.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value)
        else:
            into[key] = _deep_copy(value) if isinstance(value, dict) else value


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    base: dict[str, Any] | None = None,
) -> RunConfig:
    """Read a run config (YAML), apply ``key=value`` overrides, validate."""
    config = load_layered(RunConfig, path, overrides, base)
    if (config.data.name is None) == (config.data.file is None):
        source = str(path) if path is not None else "config"
        raise ConfigError(f"{source}: data: give exactly one of data.name or data.file")
    return config
