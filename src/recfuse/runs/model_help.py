"""The text of `recfuse models`: each model's constructor parameters and their defaults."""

from __future__ import annotations

import dataclasses
import inspect

from recfuse.models import MODELS, SequentialRecommender, TorchRecommender, TrainConfig
from recfuse.models.saving import constructor_parameters

SKIP = {"train", "encoder"}


def parameter_defaults(cls: type) -> dict[str, object]:
    """Constructor parameter -> default over the class hierarchy (subclass defaults win)."""
    out: dict[str, object] = {}
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        for name, p in inspect.signature(klass.__init__).parameters.items():  # type: ignore[misc]
            if name in constructor_parameters(cls) and name not in SKIP and name not in out:
                out[name] = "(required)" if p.default is inspect.Parameter.empty else p.default
    return out


def models_text() -> str:
    lines = []
    for key, cls in MODELS.items():
        doc = (inspect.getdoc(cls) or "").splitlines()[0]
        lines.append(f"{key}  ({cls.__name__}): {doc}")
        params = parameter_defaults(cls)
        for name, default in params.items():
            lines.append(f"    model.params.{name} = {default!r}")
        if issubclass(cls, SequentialRecommender):
            lines.append(
                "    model.encoder = {kind: id}  (kind id|replace|fusion|dff, "
                "features: minilm/layer3/mean | [...], mode: concat|sum|gate)"
            )
        if issubclass(cls, TorchRecommender):
            lines.append("    train.* (shared TrainConfig, see below)")
        lines.append("")
    lines.append("train settings of every neural model (train.KEY in a config):")
    for f in dataclasses.fields(TrainConfig):
        lines.append(f"    train.{f.name} = {f.default!r}")
    return "\n".join(lines)


def default_of(model_name: str, key: str) -> object | None:
    """The default value of a dotted config key (``model.params.l2``), None when unknown."""
    cls = MODELS.get(model_name.lower())
    prefix = "model.params."
    if cls is None or not key.startswith(prefix):
        return None
    value = parameter_defaults(cls).get(key[len(prefix) :])
    return None if value == "(required)" else value
