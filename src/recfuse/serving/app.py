"""`recfuse serve`: recommendations from a saved run over HTTP, every request gated and logged.

Endpoints (bodies are pydantic models; every error is a 4xx with a message):

* ``GET /health``
* ``GET /recommend?user=<raw id>&k=10`` — a known user, the whole history masked
* ``POST /recommend`` ``{"history": [raw item ids], "k": 10, "user": null}`` — a new user
  (sequential and neighbourhood models)
* ``GET /items/<raw id>`` — title and training popularity
* ``GET /explain?user=&item=`` — the history items that contribute most to the item's score
* ``GET /report`` — the run's HTML report
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi import Query as Q
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from recfuse.errors import RecfuseError
from recfuse.governance.governor import PolicyDenied
from recfuse.governance.policy import Resource
from recfuse.models.base import Recommender
from recfuse.serving import engine
from recfuse.serving.gate import ServingGate

CLIENT_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may ask (each checked before any work)."""

    max_k: int = 100
    max_history: int = 2000
    max_body_bytes: int = 65_536
    timeout_s: float = 5.0


# ----------------------------------------------------------------------------- bodies


class ItemOut(BaseModel):
    rank: int
    item_id: str
    title: str
    score: float


class RecommendResponse(BaseModel):
    user: str | None
    k: int
    items: list[ItemOut]
    ledger_entry: int | None = Field(
        description="the ledger entry of this request (null: gate off)"
    )


class HistoryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    history: list[str | int] = Field(min_length=1)
    k: int = Field(10, ge=1)
    user: str | int | None = None


class ItemInfo(BaseModel):
    item_id: str
    title: str
    train_interactions: int


class Contribution(BaseModel):
    item_id: str
    title: str
    weight: float


class ExplainResponse(BaseModel):
    user: str
    item_id: str
    title: str
    score: float
    rank: int = Field(description="rank among the user's unseen items (ties counted against it)")
    method: str
    contributions: list[Contribution]
    feature_space: str | None = None
    nearest_in_features: list[Contribution] | None = None
    ledger_entry: int | None = None


class Health(BaseModel):
    status: str
    model: str
    users: int
    items: int
    gate: bool


# ----------------------------------------------------------------------------- the app


class BodyLimit:
    """ASGI middleware: 413 for a body over ``limit`` bytes, declared or streamed."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(send, self.limit)
            return
        seen = 0

        async def limited() -> MutableMapping[str, Any]:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _BodyTooLarge:
            await _too_large(send, self.limit)


class _BodyTooLarge(Exception):
    pass


async def _too_large(
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]], limit: int
) -> None:
    body = json.dumps({"detail": f"request body over {limit} bytes"}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Service:
    """What the endpoints share: the model (loaded once), its batcher, the gate, the limits."""

    def __init__(
        self, model: Recommender, gate: ServingGate, limits: Limits, run: Path | None = None
    ) -> None:
        self.model = model
        self.gate = gate
        self.limits = limits
        self.run = run
        self.batcher = engine.Batcher(model)
        self.popularity = engine.item_popularity(model)
        self.titles = model.ids_.titles
        self._report: str | None = None

    def title(self, item: int) -> str:
        return "" if self.titles is None else str(self.titles[item])

    def raw(self, item: int) -> str:
        return str(self.model.ids_.item_ids[item])

    def scores(self, query: engine.Query) -> np.ndarray:
        try:
            return self.batcher.score(query, timeout=self.limits.timeout_s)
        except FutureTimeout:
            raise _Unavailable(f"scoring took over {self.limits.timeout_s:g} s") from None

    def recommend(
        self, client: str, user: str | None, query: engine.Query, k: int
    ) -> RecommendResponse:
        """Gate the request, score it, keep the candidates the policy allows, log it."""
        self.check_size(k, len(query.history))
        context = {"k": k, "history_len": len(query.history)}
        request = {"user": user, "k": k, "history": [self.raw(i) for i in query.history]}
        resource = Resource(
            "User", str(user if user is not None else "new"), {"known": query.user >= 0}
        )

        def serve() -> list[dict[str, Any]]:
            return self._allowed_top(client, query, k)

        items = self.gate.run("recommend", client, resource, context, request, serve)
        entry = self.gate.governor.last_entry if self.gate.governor else None
        return RecommendResponse(
            user=user, k=k, items=[ItemOut(**i) for i in items], ledger_entry=entry
        )

    def _allowed_top(self, client: str, query: engine.Query, k: int) -> list[dict[str, Any]]:
        """The ``k`` best unseen items the policy lets this client have, best first.

        Candidates are asked in growing pools (2k, 8k, ...) so a policy that refuses many items
        still fills the list, and no item is asked twice.
        """
        scores = self.scores(query)
        seen = set(query.history.tolist())
        kept: list[int] = []
        asked: set[int] = set()
        want = 2 * k
        while True:
            pool = engine.candidates(scores, query.history, want)
            fresh = [int(i) for i in pool if int(i) not in asked]
            asked.update(fresh)
            allowed = self.gate.allowed_items(client, [self._resource(i, seen) for i in fresh])
            kept += [i for i, ok in zip(fresh, allowed, strict=True) if ok]
            if len(kept) >= k or len(pool) < want:
                break
            want *= 4
        return [
            {
                "rank": r + 1,
                "item_id": self.raw(i),
                "title": self.title(i),
                "score": float(scores[i]),
            }
            for r, i in enumerate(kept[:k])
        ]

    def _resource(self, item: int, seen: set[int]) -> Resource:
        attrs = {"in_history": item in seen, "popularity": int(self.popularity[item])}
        return Resource("Item", self.raw(item), attrs)

    def check_size(self, k: int, history: int) -> None:
        if k > self.limits.max_k:
            raise _BadRequest(f"k={k} is over the limit of {self.limits.max_k}")
        if history > self.limits.max_history:
            raise _BadRequest(
                f"history of {history} items is over the limit of {self.limits.max_history}"
            )

    def explain(self, client: str, user: str, item_raw: str) -> ExplainResponse:
        query = engine.history_of(self.model, user, None)
        item = engine.item_index(self.model, item_raw)
        self.check_size(1, len(query.history))
        context = {"k": 1, "history_len": len(query.history)}
        request = {"user": user, "item": item_raw}

        def work() -> dict[str, Any]:
            return self._explanation(query, item)

        body = self.gate.run(
            "explain", client, Resource("User", str(user), {"known": True}), context, request, work
        )
        entry = self.gate.governor.last_entry if self.gate.governor else None
        return ExplainResponse(**body, user=str(user), item_id=str(item_raw), ledger_entry=entry)

    def _explanation(self, query: engine.Query, item: int) -> dict[str, Any]:
        scores = self.scores(query)
        masked = engine.candidates(scores, query.history, len(scores))
        rank = (
            int((scores[masked] >= scores[item]).sum())
            if item not in set(query.history.tolist())
            else 0
        )
        if self.model.needs_known_user:
            method, pairs = self._factor_neighbours(query, item)
        else:
            _, positions, weights = engine.ablation(self.model, query.user, query.history, item)
            order = np.argsort(-weights, kind="stable")[:10]
            method = "leave-one-out: score drop when the history item is removed"
            pairs = [(int(query.history[positions[i]]), float(weights[i])) for i in order]
        body: dict[str, Any] = {
            "title": self.title(item),
            "score": float(scores[item]),
            "rank": rank,
            "method": method,
            "contributions": [self._contribution(i, w) for i, w in pairs],
        }
        frozen = engine.frozen_features(self.model)
        if frozen is not None:
            name, matrix = frozen
            near = engine.nearest(matrix, item, np.unique(query.history), 5)
            body["feature_space"] = name
            body["nearest_in_features"] = [self._contribution(i, w) for i, w in near]
        return body

    def _factor_neighbours(
        self, query: engine.Query, item: int
    ) -> tuple[str, list[tuple[int, float]]]:
        vectors = engine.item_vectors(self.model)
        if vectors is None:
            return "no item vectors to compare", []
        near = engine.nearest(vectors, item, np.unique(query.history), 10)
        return "cosine of learned item vectors (the model scores users, not histories)", near

    def _contribution(self, item: int, weight: float) -> dict[str, Any]:
        return {"item_id": self.raw(item), "title": self.title(item), "weight": weight}

    def report(self) -> str:
        if self._report is None:
            if self.run is None:
                raise _NotFound("this server was started without a run folder: no report")
            from recfuse.report.build import build_report

            path = build_report(self.run, self.run / "report.html")
            self._report = path.read_text(encoding="utf-8")
        return self._report


class _BadRequest(Exception):
    status = 400


class _NotFound(Exception):
    status = 404


class _Unavailable(Exception):
    status = 503


def client_of(request: Request) -> str:
    """The client id for the rate limit and the ledger: ``X-Client-Id`` or the peer address."""
    header = request.headers.get("x-client-id")
    if header is not None:
        if not CLIENT_ID.match(header):
            raise _BadRequest("X-Client-Id must be 1-64 letters, digits or . _ : -")
        return header
    return f"ip:{request.client.host}" if request.client else "ip:unknown"


def create_app(service: Service) -> FastAPI:
    """The FastAPI app over one `Service`."""
    app = FastAPI(title="recfuse serve", version="1")
    app.add_middleware(BodyLimit, limit=service.limits.max_body_bytes)
    _errors(app)

    @app.get("/health", response_model=Health)
    def health() -> Health:
        split = service.model.split_
        return Health(
            status="ok",
            model=service.model.name,
            users=split.n_users,
            items=split.n_items,
            gate=service.gate.enabled,
        )

    @app.get("/recommend", response_model=RecommendResponse)
    def recommend(
        request: Request, user: str = Q(..., min_length=1, max_length=200), k: int = Q(10, ge=1)
    ) -> RecommendResponse:
        query = engine.history_of(service.model, user, None)
        return service.recommend(client_of(request), user, query, k)

    @app.post("/recommend", response_model=RecommendResponse)
    async def recommend_history(request: Request) -> RecommendResponse:
        body = _parse(await request.body())
        if service.model.needs_known_user:
            raise _BadRequest(f"{service.model.name} scores known users only; use GET /recommend")
        service.check_size(body.k, len(body.history))
        try:
            query = engine.history_of(service.model, body.user, body.history)
        except RecfuseError as exc:
            raise _BadRequest(str(exc)) from None
        user = None if body.user is None else str(body.user)
        from starlette.concurrency import run_in_threadpool

        return await run_in_threadpool(service.recommend, client_of(request), user, query, body.k)

    @app.get("/items/{item_id}", response_model=ItemInfo)
    def item(item_id: str) -> ItemInfo:
        index = engine.item_index(service.model, item_id)
        return ItemInfo(
            item_id=item_id,
            title=service.title(index),
            train_interactions=int(service.popularity[index]),
        )

    @app.get("/explain", response_model=ExplainResponse)
    def explain(
        request: Request,
        user: str = Q(..., min_length=1, max_length=200),
        item: str = Q(..., min_length=1, max_length=200),
    ) -> ExplainResponse:
        return service.explain(client_of(request), user, item)

    @app.get("/report", response_class=HTMLResponse)
    def report() -> HTMLResponse:
        return HTMLResponse(service.report())

    return app


def _parse(raw: bytes) -> HistoryRequest:
    try:
        return HistoryRequest.model_validate_json(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise _BadRequest(f"{where}: {first['msg']}") from None


def _errors(app: FastAPI) -> None:
    def reply(status: int, message: str) -> JSONResponse:
        return JSONResponse({"detail": message}, status_code=status)

    @app.exception_handler(RequestValidationError)
    def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return reply(400, f"{where}: {first['msg']}")

    @app.exception_handler(PolicyDenied)
    def denied(_: Request, exc: PolicyDenied) -> JSONResponse:
        limited = any("rate-limit" in r for r in exc.decision.reasons)
        return reply(429 if limited else 403, str(exc))

    @app.exception_handler(RecfuseError)
    def unknown(_: Request, exc: RecfuseError) -> JSONResponse:
        return reply(404 if isinstance(exc, engine.UnknownId) else 400, str(exc))

    for cls in (_BadRequest, _NotFound, _Unavailable):
        app.add_exception_handler(cls, lambda _r, exc: reply(exc.status, str(exc)))  # type: ignore[attr-defined]
