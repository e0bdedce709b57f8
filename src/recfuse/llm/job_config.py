"""The job YAML, validated with pydantic; every error names the offending key."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recfuse.errors import ConfigError
from recfuse.llm.backend_spec import BackendSpec
from recfuse.llm.base import GenerationParams
from recfuse.llm.parsing import ParseSpec
from recfuse.llm.prompts import PromptTemplate
from recfuse.llm.sources import SourceSpec
from recfuse.sections import section_of


class TemplateSpec(BaseModel):
    """The ``template:`` block; see `PromptTemplate`."""

    model_config = ConfigDict(extra="forbid")

    user: str
    system: str = "You are a careful assistant for a recommender system."
    version: str = "v1"
    max_field_chars: int = Field(default=2000, ge=1)
    trusted_fields: list[str] = Field(default_factory=list)

    def build(self) -> PromptTemplate:
        return PromptTemplate(
            self.user, self.system, self.version, self.max_field_chars, tuple(self.trusted_fields)
        )


class ParamsSpec(section_of(GenerationParams, "ParamsSpec", exclude={"json_schema"})):  # type: ignore[misc]
    """The ``params:`` block: the fields of `GenerationParams` (part of every cache key) except
    ``json_schema``, which the job derives from its ``parse:`` block."""

    def build(self) -> GenerationParams:
        return GenerationParams(**self.model_dump())


class JobConfig(BaseModel):
    """A whole job: what to ask (template + source), whom (backend), how (params, parse), where
    (cache) and with what executor."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,100}$")
    task: Literal["generate", "score"] = "generate"
    options: list[str] = Field(default_factory=list)
    backend: BackendSpec = Field(default_factory=lambda: BackendSpec())
    template: TemplateSpec
    source: SourceSpec
    params: ParamsSpec = Field(default_factory=lambda: ParamsSpec())
    parse: ParseSpec = Field(default_factory=lambda: ParseSpec())
    executor: Literal["local", "ray"] = "local"
    workers: int = Field(default=2, ge=1, le=256)
    cache: str | None = None
    retry_failed: bool = False


def load_job_config(path: str | Path) -> JobConfig:
    """Read and validate a job YAML; raise `ConfigError` naming the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such job file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ConfigError(
            f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})"
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a job file must be a mapping of keys")
    try:
        config = JobConfig.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        first = errors[0]
        key = ".".join(str(p) for p in first["loc"]) or "(top level)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{path}: {key}: {first['msg']}{more}") from None
    if config.task == "score" and len(config.options) < 2:
        raise ConfigError(f"{path}: options: a score task needs at least two options")
    return config
