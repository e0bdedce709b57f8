"""`Governor`: the gate every governed action passes, and the `governed` decorator.

``Governor.run(action, resource, fn, ...)`` asks the policies first; a denied action is written to
the ledger and raises `PolicyDenied` *without calling* ``fn``; an allowed one runs and is written
with the digest of its output (or of the error it raised). Every entry carries the policy set's
hash, so a change of policy is visible in every entry after it, and the policy texts themselves
are logged (as a blob) the first time a set is used.
"""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from recfuse.errors import RecfuseError
from recfuse.governance.digest import canonical_json, digest, jsonable
from recfuse.governance.ledger import Ledger
from recfuse.governance.policy import Decision, Policies, Resource

T = TypeVar("T")


class PolicyDenied(RecfuseError):
    """The policies did not allow an action; it was logged (entry ``entry``) and not executed."""

    def __init__(self, action: str, resource: Resource, decision: Decision, entry: int) -> None:
        why = (
            ", ".join(decision.reasons or decision.errors) or "no policy permits it (default deny)"
        )
        super().__init__(
            f"{action} on {resource.type}::{resource.id!r} denied by policy: {why} [ledger entry {entry}]"
        )
        self.action = action
        self.resource = resource
        self.decision = decision
        self.entry = entry


class Governor:
    """Policy gate plus ledger for one actor.

    Args:
        ledger: where every decision and outcome is written.
        policies: the Cedar policy set the gate asks.
        actor: the principal (``Agent::"<actor>"``) unless a call names another.
        keep_content: also store the canonical inputs and outputs as blobs beside the log (so one
            can later show *what* an LLM was asked and answered, not only its digest).
        write_ahead: write an ``intent`` entry before an allowed action runs, so an action that
            crashes the process still leaves a trace (costs a second append).
    """

    def __init__(
        self,
        ledger: Ledger,
        policies: Policies,
        actor: str = "recfuse",
        keep_content: bool = False,
        write_ahead: bool = False,
    ) -> None:
        self.ledger = ledger
        self.actor = actor
        self.keep_content = keep_content
        self.write_ahead = write_ahead
        self._local = threading.local()
        self.policies = policies
        self._record_policies()

    @property
    def last_entry(self) -> int | None:
        """Index of the last entry this thread wrote."""
        return getattr(self._local, "last_entry", None)

    def set_policies(self, policies: Policies) -> None:
        """Switch to another policy set; the switch itself is logged with the new texts."""
        self.policies = policies
        self._record_policies()

    def _record_policies(self) -> None:
        content = self.policies.canonical
        self._append(
            {
                "actor": self.actor,
                "action": "load_policies",
                "resource": {"type": "PolicySet", "id": self.policies.hash},
                "decision": "allow",
                "reasons": [],
                "policy_set": self.policies.hash,
                "outcome": "ok",
                "outputs": self.policies.hash,
                "detail": {"policy_ids": list(self.policies.ids)},
            },
            {self.policies.hash: content},
        )

    def _append(self, fields: dict[str, Any], blobs: Mapping[str, bytes] | None = None) -> int:
        index = self.ledger.append(fields, blobs)
        self._local.last_entry = index
        return index

    def authorize(
        self,
        action: str,
        resource: Resource,
        context: Mapping[str, Any] | None = None,
        actor: str | None = None,
    ) -> Decision:
        """Ask the policies only (nothing is logged)."""
        return self.policies.authorize(actor or self.actor, action, resource, context)

    def run(
        self,
        action: str,
        resource: Resource,
        fn: Callable[..., T],
        *args: Any,
        context: Mapping[str, Any] | None = None,
        actor: str | None = None,
        inputs: Any = None,
        **kwargs: Any,
    ) -> T:
        """Gate, run and log ``fn(*args, **kwargs)`` as ``action`` on ``resource``.

        ``inputs`` is what the entry's input digest covers (default: the call's arguments).
        Raises `PolicyDenied` (after logging) when the policies do not allow it.
        """
        actor = actor or self.actor
        context = dict(context or {})
        decision = self.policies.authorize(actor, action, resource, context)
        inputs = {"args": args, "kwargs": kwargs} if inputs is None else inputs
        in_json = jsonable(inputs)
        in_digest = digest(in_json)
        blobs = {in_digest: canonical_json(in_json)} if self.keep_content else {}
        fields: dict[str, Any] = {
            "actor": actor,
            "action": action,
            "resource": {"type": resource.type, "id": resource.id},
            "context": jsonable(context),
            "inputs": in_digest,
            "decision": decision.label,
            "reasons": list(decision.reasons),
            "policy_set": decision.policy_set,
        }
        if decision.errors:
            fields["policy_errors"] = list(decision.errors)
        if not decision.allowed:
            entry = self._append({**fields, "outcome": "denied", "outputs": None}, blobs)
            raise PolicyDenied(action, resource, decision, entry)
        if self.write_ahead:
            fields["intent"] = self._append({**fields, "outcome": "intent", "outputs": None}, blobs)
            blobs = {}
        start = time.perf_counter()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            self._append(
                {
                    **fields,
                    "outcome": "error",
                    "outputs": None,
                    "error": f"{type(exc).__name__}: {exc}"[:500],
                    "duration_ms": round((time.perf_counter() - start) * 1e3, 3),
                },
                blobs,
            )
            raise
        out_json = jsonable(result)
        out_digest = digest(out_json)
        if self.keep_content:
            blobs = {**blobs, out_digest: canonical_json(out_json)}
        self._append(
            {
                **fields,
                "outcome": "ok",
                "outputs": out_digest,
                "duration_ms": round((time.perf_counter() - start) * 1e3, 3),
            },
            blobs,
        )
        return result

    def governed(
        self,
        action: str | None = None,
        resource: Resource | Callable[..., Resource] | None = None,
        context: Callable[..., Mapping[str, Any]] | None = None,
        actor: str | None = None,
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """`governed` bound to this governor."""
        return governed(self, action=action, resource=resource, context=context, actor=actor)


def governed(
    governor: Governor | Callable[[], Governor],
    action: str | None = None,
    resource: Resource | Callable[..., Resource] | None = None,
    context: Callable[..., Mapping[str, Any]] | None = None,
    actor: str | None = None,
) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorate a function so every call passes the policy gate and lands in the ledger.

    ``governor`` may be a `Governor` or a zero-argument callable returning one (bind late, e.g. a
    module-level function governed by whichever run is active). ``resource`` and ``context`` may
    be callables; they receive the call's arguments by name (defaults applied). The action name
    defaults to the function's name, the resource to ``Function::"<qualified name>"``.

    Example::

        @governed(gov, action="write_synthetic",
                  resource=lambda item, n: Resource("Item", str(item), {...}),
                  context=lambda item, n: {"requested": n})
        def write_synthetic(item: int, n: int) -> int: ...
    """

    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        signature = inspect.signature(fn)
        name = action or fn.__name__

        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> T:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            arguments = {k: v for k, v in bound.arguments.items() if k not in ("self", "cls")}
            gov = governor if isinstance(governor, Governor) else governor()
            if callable(resource) and not isinstance(resource, Resource):
                target = resource(**arguments)
            else:
                target = resource or Resource("Function", f"{fn.__module__}.{fn.__qualname__}")
            ctx = context(**arguments) if context is not None else {}
            return gov.run(
                name, target, fn, *args, context=ctx, actor=actor, inputs=arguments, **kwargs
            )

        return inner

    return wrap
