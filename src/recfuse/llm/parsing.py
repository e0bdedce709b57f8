"""Parse model output into values, or into a counted failure with a reason — never a crash.

Three parsers cover the jobs recfuse runs: free `TextParser` (captions, explanations),
`ChoiceParser` (yes/no, A/B) and `JsonParser` (structured output validated by a pydantic model).
JSON is read with `json.loads` only: no eval, no pickle.
"""

from __future__ import annotations

import difflib
import json
import re
import unicodedata
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from recfuse.errors import ConfigError

# Openings that small instruction-tuned models use to refuse.
_REFUSAL = re.compile(
    r"^\W*(i\s*(am|'m)\s+(sorry|unable|not able)|i\s+(can\s*not|can't|won't|cannot)|"
    r"sorry\b|as an ai\b|i apologi[sz]e)",
    re.IGNORECASE,
)


class ParseFailure(Exception):
    """The output could not be turned into a value; ``reason`` is stored with the failure."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Parser(Protocol):
    """Turns raw model text into a JSON-able value or raises `ParseFailure`."""

    def parse(self, text: str) -> Any: ...


_FENCE_ECHO = re.compile(r"<<<\s*data|data\s*>>>", re.IGNORECASE)


def check_refusal(text: str) -> None:
    """Raise `ParseFailure` for empty output, a refusal, or output that echoes a data fence
    (small models sometimes copy the fenced input instead of answering)."""
    if not text.strip():
        raise ParseFailure("empty output")
    if _REFUSAL.match(text.strip()):
        raise ParseFailure(f"refusal: {text.strip()[:80]!r}")
    if _FENCE_ECHO.search(text):
        raise ParseFailure(f"echo: output repeats the data fence: {text.strip()[:80]!r}")


class TextParser:
    """Any non-empty, non-refusal text, stripped; optionally at least ``min_chars`` long."""

    def __init__(self, min_chars: int = 1):
        self.min_chars = min_chars

    def parse(self, text: str) -> str:
        check_refusal(text)
        value = text.strip()
        if len(value) < self.min_chars:
            raise ParseFailure(f"too short: {len(value)} < {self.min_chars} characters")
        return value


class ChoiceParser:
    """The option the answer starts with (case-insensitive, punctuation ignored)."""

    def __init__(self, options: list[str]):
        if not options:
            raise ConfigError("parse.options: a choice parser needs at least one option")
        self.options = options

    def parse(self, text: str) -> str:
        check_refusal(text)
        head = re.sub(r"^[\s\"'*`(\[]+", "", text).lower()
        # Longest first, so "yes, definitely" never matches an option "y" before "yes".
        for option in sorted(self.options, key=len, reverse=True):
            if (
                head.startswith(option.lower())
                and not head[len(option) : len(option) + 1].isalnum()
            ):
                return option
        raise ParseFailure(f"not one of {self.options}: {text.strip()[:80]!r}")


_FENCED_BLOCK = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)


def extract_json_object(text: str) -> Any:
    """The JSON object that is the whole answer, or the one fenced block (```json ... ```).

    Taking the first ``{`` that parses would accept an object quoted from the prompt or one of
    several drafts; an answer with prose around unfenced JSON, or with two fenced objects, is a
    failure (and is retried).
    """
    stripped = text.strip()
    value = _loads_object(stripped)
    if value is not None:
        return value
    blocks = (_loads_object(m.group(1).strip()) for m in _FENCED_BLOCK.finditer(text))
    objects = [b for b in blocks if b is not None]
    if len(objects) == 1:
        return objects[0]
    if len(objects) > 1:
        raise ParseFailure(f"several JSON objects in output: {len(objects)} fenced blocks")
    hint = " (JSON must be the whole answer or one fenced block)" if "{" in stripped else ""
    raise ParseFailure(f"no JSON object in output: {stripped[:80]!r}{hint}")


def _loads_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _plain(text: str) -> str:
    """Lower-case words only: how an echo is compared with the prompt."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


ECHO_MIN_CHARS = 12
ECHO_SHARE = 0.8


def check_echo(text: str, prompt: str) -> None:
    """Raise `ParseFailure` when the output repeats its prompt instead of answering.

    An echo is the data fence copied (see `check_refusal`) or an output of which at least
    `ECHO_SHARE` (and `ECHO_MIN_CHARS` characters) is one run copied from the prompt: the
    instructions, the system rule, or the fenced data itself, compared on lower-case words.
    """
    if _FENCE_ECHO.search(text):
        raise ParseFailure(f"echo: output repeats the data fence: {text.strip()[:80]!r}")
    out = _plain(text)[:400]
    if len(out) < ECHO_MIN_CHARS:
        return
    source = _plain(prompt)[:8000]
    match = difflib.SequenceMatcher(None, source, out, autojunk=False).find_longest_match(
        0, len(source), 0, len(out)
    )
    if match.size >= max(ECHO_MIN_CHARS, ECHO_SHARE * len(out)):
        raise ParseFailure(f"echo: output repeats the prompt: {text.strip()[:80]!r}")


class JsonParser:
    """A JSON object validated against a pydantic model; the parsed value is its ``model_dump``."""

    def __init__(self, model: type[BaseModel]):
        self.model = model

    def parse(self, text: str) -> dict[str, Any]:
        check_refusal(text)
        obj = extract_json_object(text)
        try:
            return self.model.model_validate(obj).model_dump(mode="json")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(map(str, first["loc"])) or "(root)"
            raise ParseFailure(f"schema: {where}: {first['msg']}") from None

    def json_schema(self) -> dict[str, Any]:
        return self.model.model_json_schema()


_FIELD_TYPES: dict[str, Any] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list[str]": list[str],
    "list[int]": list[int],
    "list[float]": list[float],
}


def model_from_fields(fields: dict[str, str], name: str = "Output") -> type[BaseModel]:
    """A pydantic model from ``{"name": "str" | "int" | ... | "a|b|c"}`` (``a|b|c``: a literal)."""
    spec: dict[str, Any] = {}
    for key, kind in fields.items():
        if kind in _FIELD_TYPES:
            spec[key] = (_FIELD_TYPES[kind], Field(...))
        elif "|" in kind:
            spec[key] = (Literal[tuple(k.strip() for k in kind.split("|"))], Field(...))
        else:
            raise ConfigError(
                f"parse.fields.{key}: unknown type {kind!r}; use one of "
                f"{', '.join(_FIELD_TYPES)} or a|b|c"
            )
    return create_model(name, __config__=ConfigDict(extra="ignore"), **spec)


class ParseSpec(BaseModel):
    """How a job parses outputs (the ``parse:`` block of a job YAML)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["text", "choice", "json"] = "text"
    options: list[str] = Field(default_factory=list)
    fields: dict[str, str] = Field(default_factory=dict)
    min_chars: int = 1
    retries: int = Field(default=2, ge=0, le=10)

    def build(self) -> Parser:
        if self.kind == "choice":
            return ChoiceParser(self.options)
        if self.kind == "json":
            if not self.fields:
                raise ConfigError("parse.fields: a json parser needs at least one field")
            return JsonParser(model_from_fields(self.fields))
        return TextParser(self.min_chars)
