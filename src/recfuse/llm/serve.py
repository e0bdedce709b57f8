"""`recfuse llm serve`: a small OpenAI-compatible server over the local transformers backend.

Endpoints: ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions`` (with
``echo`` and ``logprobs``, enough for `HTTPLLM.score`) and ``GET /health``. One model, one request
computing at a time (a lock: two forward passes at once would only fight over the same cores).
It binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from recfuse.llm.base import RawPrompt
from recfuse.llm.transformers_backend import TransformersLLM


class ChatRequest(BaseModel):
    """The subset of OpenAI's chat request that the server honours (others are ignored)."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    messages: list[dict[str, str]]
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=1)


class CompletionRequest(BaseModel):
    """The subset of OpenAI's (legacy) completion request that the server honours."""

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    prompt: str | list[str]
    max_tokens: int = Field(default=16, ge=0)
    temperature: float = Field(default=1.0, ge=0)
    stop: str | list[str] | None = None
    seed: int | None = None
    echo: bool = False
    logprobs: int | None = Field(default=None, ge=0, le=5)
    n: int = Field(default=1, ge=1, le=1)


def _stops(stop: str | list[str] | None) -> list[str]:
    return [stop] if isinstance(stop, str) else list(stop or [])


def create_app(llm: TransformersLLM) -> Any:
    """A FastAPI app serving ``llm`` (build the backend first: loading takes seconds)."""
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse

    from recfuse.errors import RecfuseError

    app = FastAPI(title="recfuse llm serve")

    @app.exception_handler(RecfuseError)
    def bad_request(request: Request, exc: RecfuseError) -> JSONResponse:
        # Bad prompts (unknown roles, empty options) are the client's error, not the server's.
        return JSONResponse(
            status_code=400, content={"error": {"message": str(exc), "type": "invalid_request"}}
        )

    lock = threading.Lock()
    name = llm.model_name

    def envelope(kind: str, choices: list[dict[str, Any]], ptok: int, ctok: int) -> dict[str, Any]:
        return {
            "id": f"{kind}-{uuid.uuid4().hex[:16]}",
            "object": kind,
            "created": int(time.time()),
            "model": name,
            "choices": choices,
            "usage": {
                "prompt_tokens": ptok,
                "completion_tokens": ctok,
                "total_tokens": ptok + ctok,
            },
        }

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok", "model": name}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [
                {
                    "id": name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "recfuse",
                    "weights": llm.model_id,
                }
            ],
        }

    @app.post("/v1/chat/completions")
    def chat(request: ChatRequest) -> dict[str, Any]:
        max_tokens = request.max_completion_tokens or request.max_tokens or 256
        with lock:
            gen = llm.generate(
                [request.messages],
                max_tokens=max_tokens,
                temperature=request.temperature,
                stop=_stops(request.stop),
                seed=request.seed or 0,
            )[0]
        choice = {
            "index": 0,
            "message": {"role": "assistant", "content": gen.text},
            "finish_reason": gen.finish_reason,
            "logprobs": None,
        }
        return envelope("chat.completion", [choice], gen.prompt_tokens, gen.completion_tokens)

    @app.post("/v1/completions")
    def completions(request: CompletionRequest) -> dict[str, Any]:
        prompts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
        choices, ptok, ctok = [], 0, 0
        for index, prompt in enumerate(prompts):
            with lock:
                if request.max_tokens > 0:
                    gen = llm.generate(
                        [RawPrompt(prompt)],
                        max_tokens=request.max_tokens,
                        temperature=request.temperature,
                        stop=_stops(request.stop),
                        seed=request.seed or 0,
                    )[0]
                    text, n_prompt, n_new, finish = (
                        gen.text,
                        gen.prompt_tokens,
                        gen.completion_tokens,
                        gen.finish_reason,
                    )
                else:
                    text, n_prompt, n_new, finish = (
                        "",
                        len(llm.encode(RawPrompt(prompt))),
                        0,
                        "length",
                    )
                logprobs = None
                if request.logprobs is not None:
                    # One forward pass over prompt + completion, so every returned token is
                    # scored in its real context; offsets index the returned text.
                    tokens, values, offsets = llm.token_logprobs(prompt + text)
                    if not request.echo:
                        keep = [i for i, o in enumerate(offsets) if o >= len(prompt)]
                        tokens = [tokens[i] for i in keep]
                        values = [values[i] for i in keep]
                        offsets = [offsets[i] - len(prompt) for i in keep]
                    logprobs = {
                        "tokens": tokens,
                        "token_logprobs": values,
                        "text_offset": offsets,
                        "top_logprobs": None,
                    }
            choices.append(
                {
                    "index": index,
                    "text": (prompt + text) if request.echo else text,
                    "finish_reason": finish,
                    "logprobs": logprobs,
                }
            )
            ptok += n_prompt
            ctok += n_new
        return envelope("text_completion", choices, ptok, ctok)

    return app


def serve(
    model: str = "smollm2",
    host: str = "127.0.0.1",
    port: int = 8000,
    batch_size: int = 8,
    threads: int | None = None,
) -> None:
    """Load ``model`` and serve it until interrupted."""
    import uvicorn

    llm = TransformersLLM(model, batch_size=batch_size, threads=threads)
    uvicorn.run(create_app(llm), host=host, port=port, log_level="warning")
