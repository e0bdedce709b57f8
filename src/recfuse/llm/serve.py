"""`recfuse llm serve`: an OpenAI-compatible server over any `LLM` backend (transformers by default).

Endpoints: ``GET /v1/models``, ``POST /v1/chat/completions``, ``POST /v1/completions`` (with
``echo`` and ``logprobs``, enough for `HTTPLLM.score`; log-probabilities need a backend with
``token_logprobs``), ``GET /health`` (with batching counters). Both completion endpoints stream
server-sent events (``stream: true``; usage in a last chunk with
``stream_options.include_usage``), take ``n`` choices, ``stop`` strings, ``seed``, and
``max_tokens`` / ``max_completion_tokens``. Concurrent requests are batched (`serve_batching`);
a client that disconnects stops its decoding, and SIGTERM stops every decoding at the next token.
What is refused, and how, is in `serve_schema`. It binds to 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from recfuse.llm.base import LLM, Generation, GenerationParams, Prompt, RawPrompt
from recfuse.llm.serve_batching import Batcher, Ticket
from recfuse.llm.serve_schema import (
    INT64,
    APIError,
    ChatRequest,
    CompletionRequest,
    ServeLimits,
    _Request,
    check_text,
    parse_request,
)

DRAIN_BYTES = 64_000_000  # past this an oversized body is not even read to the end


async def _read_body(request: Any, limit: int) -> bytes:
    """The body, or `APIError` 413 past ``limit`` bytes (read on, unkept, so the client hears it)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size <= limit:
            chunks.append(chunk)
        elif size > DRAIN_BYTES:
            break
    if size > limit:
        raise APIError(413, f"the request body is over {limit} bytes", None, "request_too_large")
    return b"".join(chunks)


def _params(req: _Request, limits: ServeLimits, name: str, max_tokens: int) -> GenerationParams:
    """Decoding parameters after the checks both endpoints share."""
    if req.model is not None and req.model != name:
        raise APIError(
            404, f"The model `{req.model}` does not exist (this server has `{name}`)",
            "model", "model_not_found",
        )  # fmt: skip
    if req.n > limits.max_n:
        raise APIError(400, f"n: at most {limits.max_n}", "n", "invalid_value")
    stops = req.stops()
    if len(stops) > 4 or any(not s for s in stops):
        raise APIError(400, "stop: up to 4 non-empty strings", "stop", "invalid_value")
    for s in stops:
        check_text(s, "stop")
    if req.stream_options is not None and not req.stream:
        raise APIError(
            400, "stream_options: only allowed when stream is true", "stream_options",
            "invalid_value",
        )  # fmt: skip
    if max_tokens > limits.max_tokens:
        raise APIError(
            400, f"max_tokens: {max_tokens} is over this server's limit of {limits.max_tokens}",
            "max_tokens", "invalid_value",
        )  # fmt: skip
    seed = req.seed % INT64 if req.seed is not None else None
    if seed is None and req.temperature > 0:
        seed = secrets.randbelow(INT64)  # unseeded sampling differs from call to call
    return GenerationParams(max(1, max_tokens), req.temperature, stops, None, seed or 0)


def _merge_key(params: GenerationParams) -> tuple[Any, ...] | None:
    # Greedy answers do not depend on batch company; seeded samples would (one RNG per batch).
    if params.temperature > 0:
        return None
    return (params.max_tokens, params.stop)


def _chat_prompt(req: ChatRequest, limits: ServeLimits) -> Prompt:
    if not req.messages:
        raise APIError(400, "messages: at least one message", "messages", "invalid_value")
    chat = [m.as_dict() for m in req.messages]
    for i, message in enumerate(chat):
        check_text(message["content"], f"messages.{i}.content")
    if sum(len(m["content"]) for m in chat) > limits.max_prompt_chars:
        raise APIError(
            400, f"messages: over {limits.max_prompt_chars} characters", "messages",
            "context_length_exceeded",
        )  # fmt: skip
    return chat


def _completion_prompts(req: CompletionRequest, limits: ServeLimits) -> list[str]:
    given: list[Any] = [req.prompt] if isinstance(req.prompt, str) else list(req.prompt)
    if not given:
        raise APIError(400, "prompt: at least one prompt", "prompt", "invalid_value")
    prompts = [p for p in given if isinstance(p, str)]
    if len(prompts) < len(given):
        raise APIError(
            400, "prompt: token-id prompts are not supported; send text", "prompt",
            "unsupported_parameter",
        )  # fmt: skip
    if len(prompts) > limits.max_n:
        raise APIError(400, f"prompt: at most {limits.max_n} prompts", "prompt", "invalid_value")
    for i, prompt in enumerate(prompts):
        if not prompt:
            raise APIError(400, f"prompt.{i}: must not be empty", "prompt", "invalid_value")
        check_text(prompt, "prompt")
    if sum(len(p) for p in prompts) > limits.max_prompt_chars:
        raise APIError(
            400, f"prompt: over {limits.max_prompt_chars} characters", "prompt",
            "context_length_exceeded",
        )  # fmt: skip
    return prompts


class _Envelope:
    """Ids and framing shared by one response's body or chunks."""

    def __init__(self, kind: str, name: str) -> None:
        self.kind, self.name = kind, name
        self.id = f"{'chatcmpl' if kind.startswith('chat') else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())

    def body(self, choices: list[dict[str, Any]], usage: dict[str, int] | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "object": self.kind,
            "created": self.created,
            "model": self.name,
            "system_fingerprint": None,
            "choices": choices,
        }
        if usage is not None or not self.kind.endswith("chunk"):
            out["usage"] = usage
        return out


def _usage(gens: list[Generation], n: int) -> dict[str, int]:
    # Each distinct prompt is counted once, however many choices it has (as OpenAI counts).
    prompt = sum(g.prompt_tokens for g in gens[::n])
    completion = sum(g.completion_tokens for g in gens)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


async def _wait(ticket: Ticket, request: Any) -> Any:
    """The ticket's result; a client that hangs up cancels it (checked every quarter second)."""
    try:
        while True:
            try:
                event = await asyncio.wait_for(ticket.events.get(), timeout=0.25)
            except TimeoutError:
                if await request.is_disconnected():
                    raise APIError(499, "client closed the request") from None
                continue
            if event[0] == "done":
                return event[1]
            if event[0] == "error":
                raise event[1]
    finally:
        ticket.cancelled.set()  # finished or not, nothing more is wanted from it


def _sse(data: dict[str, Any] | str) -> bytes:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {text}\n\n".encode()


async def _stream(
    ticket: Ticket,
    opening: list[dict[str, Any]],
    piece: Callable[[int, str], dict[str, Any]],
    closing: Callable[[list[Generation]], list[dict[str, Any]]],
) -> AsyncIterator[bytes]:
    """Server-sent events: opening chunks, one per text delta, closing chunks, ``[DONE]``.

    A disconnect cancels this generator (starlette listens for it), which cancels the ticket.
    """
    try:
        for chunk in opening:
            yield _sse(chunk)
        while True:
            event = await ticket.events.get()
            if event[0] == "text":
                yield _sse(piece(event[1], event[2]))
            elif event[0] == "done":
                for chunk in closing(event[1]):
                    yield _sse(chunk)
                yield _sse("[DONE]")
                return
            else:
                yield _sse(event[1].body())
                return
    finally:
        ticket.cancelled.set()


def create_app(llm: LLM, limits: ServeLimits | None = None) -> Any:
    """A FastAPI app serving ``llm`` (build the backend first: loading takes seconds).

    The app's batching thread starts here; ``app.state.batcher.shutdown()`` stops it (the
    lifespan does so, and `serve` does on SIGTERM before uvicorn drains connections).
    """
    limits = limits or ServeLimits()
    name = str(getattr(llm, "model_name", None) or getattr(llm, "model", None) or llm.model_id)
    batcher = Batcher(llm, limits.max_batch, limits.batch_window_s, limits.max_queue)

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(batcher.shutdown)

    app = FastAPI(title="recfuse llm serve", lifespan=lifespan)
    app.state.batcher = batcher

    @app.exception_handler(APIError)
    def api_error(request: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content=exc.body())

    @app.exception_handler(HTTPException)
    def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        body = APIError(exc.status_code, str(exc.detail), code=None).body()
        return JSONResponse(status_code=exc.status_code, content=body)

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": name, "batching": dict(batcher.stats)}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        entry = {"id": name, "object": "model", "created": 0, "owned_by": "recfuse"}
        return {"object": "list", "data": [{**entry, "weights": llm.model_id}]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Any:
        req = parse_request(ChatRequest, await _read_body(request, limits.max_body_bytes))
        return await _chat(req, request, llm, batcher, limits, name)

    @app.post("/v1/completions", response_model=None)
    async def completions(request: Request) -> Any:
        req = parse_request(CompletionRequest, await _read_body(request, limits.max_body_bytes))
        return await _completions(req, request, llm, batcher, limits, name)

    return app


async def _chat(
    req: ChatRequest, request: Any, llm: LLM, batcher: Batcher, limits: ServeLimits, name: str
) -> Any:
    if req.max_tokens and req.max_completion_tokens and req.max_tokens != req.max_completion_tokens:
        raise APIError(
            400, "max_tokens and max_completion_tokens disagree; send one", "max_tokens",
            "invalid_value",
        )  # fmt: skip
    default = min(limits.default_chat_tokens, limits.max_tokens)
    wanted = req.max_completion_tokens or req.max_tokens or default
    params = _params(req, limits, name, wanted)
    prompt = _chat_prompt(req, limits)
    ticket = Ticket([prompt] * req.n, params, req.stream, _merge_key(params))
    batcher.submit(ticket)
    env = _Envelope("chat.completion.chunk" if req.stream else "chat.completion", name)

    def choice(i: int, gen: Generation) -> dict[str, Any]:
        message = {"role": "assistant", "content": gen.text, "refusal": None}
        return {
            "index": i,
            "message": message,
            "finish_reason": gen.finish_reason,
            "logprobs": None,
        }

    if not req.stream:
        gens = await _wait(ticket, request)
        return env.body([choice(i, g) for i, g in enumerate(gens)], _usage(gens, req.n))
    usage = req.stream_options is not None and req.stream_options.include_usage

    def chunk(i: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        c = {"index": i, "delta": delta, "finish_reason": finish, "logprobs": None}
        return env.body([c], None)

    def closing(gens: list[Generation]) -> list[dict[str, Any]]:
        out = [chunk(i, {}, g.finish_reason) for i, g in enumerate(gens)]
        return out + ([env.body([], _usage(gens, req.n))] if usage else [])

    opening = [chunk(i, {"role": "assistant", "content": ""}) for i in range(req.n)]
    body = _stream(ticket, opening, lambda i, d: chunk(i, {"content": d}), closing)
    return StreamingResponse(body, media_type="text/event-stream")


def _logprobs_work(
    llm: LLM, prompts: list[str], gens: list[Generation], req: CompletionRequest
) -> Callable[[], list[dict[str, Any]]]:
    """Model work (run on the batching thread) giving each choice its ``logprobs`` object."""
    scorer = llm.token_logprobs  # type: ignore[attr-defined]
    n = req.n

    def work() -> list[dict[str, Any]]:
        out = []
        for row, gen in enumerate(gens):
            prompt = prompts[row // n]
            # One pass over prompt + completion: each token scored in its real context.
            tokens, values, offsets, tops = scorer(prompt + gen.text, top=req.logprobs or 0)
            keep = [i for i, o in enumerate(offsets) if req.echo or o >= len(prompt)]
            shift = 0 if req.echo else len(prompt)
            out.append(
                {
                    "tokens": [tokens[i] for i in keep],
                    "token_logprobs": [values[i] for i in keep],
                    "text_offset": [offsets[i] - shift for i in keep],
                    "top_logprobs": None if tops is None else [tops[i] for i in keep],
                }
            )
        return out

    return work


def _prompt_only(llm: LLM, prompts: list[str], n: int) -> Callable[[], list[Generation]]:
    """``max_tokens: 0`` (echo only): no decoding, just the prompt's token count if known."""
    encode = getattr(llm, "encode", None)

    def work() -> list[Generation]:
        counts = [len(encode(RawPrompt(p))) if callable(encode) else 0 for p in prompts]
        return [Generation("", c, 0, "length") for c in counts for _ in range(n)]

    return work


def _completion_checks(req: CompletionRequest, llm: LLM, limits: ServeLimits) -> int:
    """What only completions refuse; returns the ``max_tokens`` to use."""
    # OpenAI's default is 16 (within this server's limit).
    wanted = min(16, limits.max_tokens) if req.max_tokens is None else req.max_tokens
    if wanted == 0 and not req.echo:
        raise APIError(400, "max_tokens: 0 only with echo", "max_tokens", "invalid_value")
    if req.logprobs is not None and not callable(getattr(llm, "token_logprobs", None)):
        raise APIError(
            400, f"logprobs: backend {llm.backend!r} cannot score tokens", "logprobs",
            "unsupported_parameter",
        )  # fmt: skip
    if req.logprobs is not None and req.stream:
        raise APIError(
            400, "logprobs with stream is not supported", "logprobs", "unsupported_parameter"
        )
    return wanted


async def _completions(
    req: CompletionRequest,
    request: Any,
    llm: LLM,
    batcher: Batcher,
    limits: ServeLimits,
    name: str,
) -> Any:
    wanted = _completion_checks(req, llm, limits)
    params = _params(req, limits, name, wanted)
    prompts = _completion_prompts(req, limits)
    rows: list[Prompt] = [RawPrompt(p) for p in prompts for _ in range(req.n)]
    ticket = (
        Ticket([], params, req.stream, None, _prompt_only(llm, prompts, req.n))
        if wanted == 0
        else Ticket(rows, params, req.stream, _merge_key(params))
    )
    batcher.submit(ticket)
    env = _Envelope("text_completion", name)

    def choice(i: int, text: str, finish: str | None, logprobs: Any = None) -> dict[str, Any]:
        return {"index": i, "text": text, "finish_reason": finish, "logprobs": logprobs}

    def echoed(i: int, text: str) -> str:
        return prompts[i // req.n] + text if req.echo else text

    if not req.stream:
        gens = await _wait(ticket, request)
        logprobs: list[Any] = [None] * len(gens)
        if req.logprobs is not None:
            scoring = Ticket([], params, False, None, _logprobs_work(llm, prompts, gens, req))
            batcher.submit(scoring)
            logprobs = await _wait(scoring, request)
        choices = [
            choice(i, echoed(i, g.text), g.finish_reason, logprobs[i]) for i, g in enumerate(gens)
        ]
        return env.body(choices, _usage(gens, req.n))
    usage = req.stream_options is not None and req.stream_options.include_usage

    def closing(gens: list[Generation]) -> list[dict[str, Any]]:
        out = [env.body([choice(i, "", g.finish_reason)], None) for i, g in enumerate(gens)]
        return out + ([env.body([], _usage(gens, req.n))] if usage else [])

    opening = (
        [env.body([choice(i, echoed(i, ""), None)], None) for i in range(len(rows))]
        if req.echo
        else []
    )
    body = _stream(ticket, opening, lambda i, d: env.body([choice(i, d, None)], None), closing)
    return StreamingResponse(body, media_type="text/event-stream")


def serve(
    model: str = "smollm2",
    host: str = "127.0.0.1",
    port: int = 8000,
    threads: int | None = None,
    limits: ServeLimits | None = None,
) -> None:
    """Load ``model`` and serve it until SIGINT or SIGTERM.

    A signal first stops the batching thread (queued requests get 503, decoding stops at the
    next token), then uvicorn closes connections, waiting at most 3 s for them.
    """
    import uvicorn

    from recfuse.llm.transformers_backend import TransformersLLM

    limits = limits or ServeLimits()
    llm = TransformersLLM(model, batch_size=limits.max_batch, threads=threads)
    app = create_app(llm, limits)

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            # Decoding checks this flag at every token. The rest of the shutdown takes the
            # batcher's lock, which a signal handler must not wait for: a thread does it.
            app.state.batcher.stopping = True
            threading.Thread(target=app.state.batcher.shutdown, daemon=True).start()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3
    )
    Server(config).run()
