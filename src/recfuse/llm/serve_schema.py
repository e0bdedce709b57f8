"""Requests `recfuse llm serve` accepts, checked before any model work, and its error bodies.

Every refusal is an `APIError` rendered the way OpenAI renders one::

    {"error": {"message": "...", "type": "invalid_request_error", "param": "temperature",
               "code": "invalid_value"}}

with status 400 for a bad or unsupported field, 404 for an unknown model, 413 for a body over the
limit, 429 when the queue is full and 503 while shutting down. A field OpenAI defines but this
server cannot honour is refused (``unsupported_parameter``) unless it has its neutral value
(``top_p: 1``, ``presence_penalty: 0``, ``tools: []`` ...); a field OpenAI does not define is
refused too (``unrecognized_argument``). Nothing is silently ignored except pure bookkeeping
(``user``, ``metadata``, ``store``, ``service_tier``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

INT64 = 2**63


@dataclass(frozen=True)
class ServeLimits:
    """Bounds on what one request may ask for (all refusals are HTTP 400/413/429, never 500).

    Attributes:
        max_tokens: the largest ``max_tokens`` / ``max_completion_tokens`` accepted.
        default_chat_tokens: ``max_tokens`` of a chat request that names none.
        max_body_bytes: request bodies above this get 413 (read no further).
        max_prompt_chars: characters of prompt text (all messages or prompts) per request.
        max_n: the largest ``n``; also the most prompts a completion request may list.
        max_batch: rows (prompt x choice) decoded together in one forward batch.
        batch_window_s: how long the batcher waits after the latest arrival for more company
            (at most 4x this in all).
        max_queue: rows waiting at once; more gets 429 (the client should back off).
    """

    max_tokens: int = 512
    default_chat_tokens: int = 256
    max_body_bytes: int = 1_000_000
    max_prompt_chars: int = 32_000
    max_n: int = 8
    max_batch: int = 8
    batch_window_s: float = 0.05
    max_queue: int = 64


class APIError(Exception):
    """A refusal with an HTTP status and an OpenAI-shaped body."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = (
            status,
            message,
            param,
            code,
            kind,
        )

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }


_ANY = object()
# OpenAI fields accepted only at values that change nothing; any other value is refused.
NEUTRAL: dict[str, tuple[Any, ...] | object] = {
    "top_p": (None, 1, 1.0),
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
    "user": _ANY,
    "metadata": _ANY,
    "store": (None, False),
    "service_tier": (None, "auto", "default"),
}
CHAT_NEUTRAL: dict[str, tuple[Any, ...] | object] = {
    **NEUTRAL,
    "tools": (None, []),
    "tool_choice": (None, "none"),
    "functions": (None, []),
    "function_call": (None, "none"),
    "parallel_tool_calls": (None, True, False),
    "logprobs": (None, False),
    "top_logprobs": (None, 0),
    "response_format": (None, {"type": "text"}),
    "modalities": (None, ["text"]),
    "audio": (None,),
    "prediction": (None,),
    "reasoning_effort": (None,),
    "web_search_options": (None,),
}
COMPLETION_NEUTRAL: dict[str, tuple[Any, ...] | object] = {
    **NEUTRAL,
    "best_of": (None, 1),
    "suffix": (None, ""),
}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    include_usage: bool = False
    include_obfuscation: bool | None = None  # sent by newer clients; nothing to obfuscate here


class _Request(BaseModel):
    """Fields both endpoints share. Unknown fields land in ``model_extra`` and are judged."""

    model_config = ConfigDict(extra="allow", strict=True)
    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=0)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0, allow_inf_nan=False)
    n: int = Field(default=1, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = Field(default=None, ge=-INT64, lt=INT64)
    stream: bool = False
    stream_options: StreamOptions | None = None

    def stops(self) -> tuple[str, ...]:
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    def as_dict(self) -> dict[str, str]:
        text = (
            self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        )
        # "developer" is OpenAI's newer name for the system role.
        return {"role": "system" if self.role == "developer" else self.role, "content": text}


class ChatRequest(_Request):
    messages: list[Message]
    max_completion_tokens: int | None = Field(default=None, ge=1)


class CompletionRequest(_Request):
    prompt: str | list[str] | list[int] | list[list[int]]
    echo: bool = False
    logprobs: int | None = Field(default=None, ge=0, le=5)


def _loc(loc: tuple[int | str, ...]) -> str:
    # pydantic adds the union member it tried ("str", "list[str]"): not a field name.
    keep = [str(p) for p in loc if not (isinstance(p, str) and ("[" in p or p in _TYPES))]
    return ".".join(keep)


_TYPES = {"str", "int", "float", "bool", "list", "function-after", "TextPart", "Message"}


def parse_request(model: type[_Request], body: bytes) -> Any:
    """Validate a JSON body into ``model``; raises `APIError` 400 naming the field."""
    try:
        request = model.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] == "json_invalid":
            raise APIError(
                400, f"the body is not valid JSON: {first['msg']}", None, "invalid_json"
            ) from None
        param = _loc(tuple(first["loc"]))
        raise APIError(400, f"{param}: {first['msg']}", param or None, "invalid_value") from None
    neutral = CHAT_NEUTRAL if model is ChatRequest else COMPLETION_NEUTRAL
    for key, value in (request.model_extra or {}).items():
        allowed = neutral.get(key)
        if allowed is None:
            raise APIError(
                400, f"Unrecognized request argument supplied: {key}", key, "unrecognized_argument"
            )
        if isinstance(allowed, tuple) and value not in allowed:
            accepted = ", ".join(repr(a) for a in allowed if a is not None) or "null"
            raise APIError(
                400,
                f"{key}={value!r} is not supported by recfuse llm serve (accepted: {accepted})",
                key,
                "unsupported_parameter",
            )
    return request


def check_text(value: str, param: str) -> None:
    """Refuse text that cannot be encoded (a lone surrogate) with a 400 naming ``param``."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise APIError(400, f"{param}: not valid Unicode text", param, "invalid_value") from None
