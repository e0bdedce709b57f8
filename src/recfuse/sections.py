"""Config sections derived from the dataclasses that define them: one definition per field.

`TrainConfig` (training), `GenerationParams` (decoding) and friends are plain dataclasses that the
code passes around. A YAML file needs a pydantic model of the same fields, validated with errors
that name the key. `section_of` builds that model from the dataclass — names, types, defaults and
bounds (``Annotated[int, Field(ge=1)]`` on the dataclass field) — so no field is ever written twice.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model


class StrictSection(BaseModel):
    """Unknown keys are errors (``train.epoch: unknown key``)."""

    model_config = ConfigDict(extra="forbid")


def section_of(
    cls: type,
    name: str,
    exclude: Iterable[str] = (),
    base: type[BaseModel] = StrictSection,
) -> type[BaseModel]:
    """A pydantic model with the fields of dataclass ``cls`` except ``exclude``.

    Types (with their ``Annotated`` bounds) and defaults come from ``cls``; ``section(**...)``
    validates, and ``cls(**section.model_dump(), **rest)`` turns a validated section back into
    the dataclass. Subclass the result to give it a docstring and methods::

        class TrainSection(section_of(TrainConfig, "TrainSection", exclude={"seed"})): ...
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    skip = set(exclude)
    hints = typing.get_type_hints(cls, include_extras=True)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in skip or not f.init:
            continue
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = Field(default_factory=f.default_factory)
        else:
            default = ...
        fields[f.name] = (hints[f.name], default)
    unknown = skip - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise TypeError(f"{cls.__name__} has no field(s) {sorted(unknown)}")
    return create_model(name, __base__=base, __module__=cls.__module__, **fields)
