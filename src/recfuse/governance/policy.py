"""Cedar policies evaluated in-process: who (agent) may do what (action) to which resource.

A `Policies` object is a set of ``.cedar`` files (optionally checked against a ``.cedarschema``),
parsed once. `Policies.authorize` asks Cedar about one request:

- principal ``Agent::"<name>"``, action ``Action::"<tool or action>"``, resource ``<Type>::"<id>"``
  with the resource's attributes (an item's interaction counts, a split's part...);
- context: counts, flags, strings, and scores or rates as *scaled integers* — Cedar has no floats,
  so every float is sent as ``round(x * SCALE)`` (``SCALE = 10_000``: 0.2 becomes 2000).

Decisions fail closed: no permit means deny (Cedar's default), and a request on which any policy
raised an evaluation error is denied too, because Cedar skips an erroring policy and a skipped
``forbid`` would otherwise let a ``permit`` through. Each policy is named ``<file>/<@id>``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cedarpy

from recfuse.errors import ConfigError
from recfuse.governance.digest import canonical_json, sha256_hex

SCALE = 10_000
POLICY_DIR = Path(__file__).parent / "policies" / "catalogue"


def scaled(value: float) -> int:
    """A float as Cedar sees it: ``round(value * SCALE)``."""
    return int(round(value * SCALE))


def to_cedar(value: Any) -> Any:
    """A context or attribute value in Cedar's types (Long, String, Bool, Set, Record)."""
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return scaled(value)
    if hasattr(value, "item") and not isinstance(value, list | tuple | Mapping):  # numpy scalars
        return to_cedar(value.item())
    if isinstance(value, Mapping):
        return {str(k): to_cedar(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_cedar(v) for v in value]
    raise ConfigError(f"cannot pass a {type(value).__name__} to Cedar: {value!r}")


@dataclass(frozen=True)
class Resource:
    """What an action touches: Cedar type (``Item``, ``User``, ``Tool``, ``Split``...), id, attributes."""

    type: str
    id: str
    attrs: Mapping[str, Any] = field(default_factory=dict)

    def uid(self) -> dict[str, str]:
        return {"type": self.type, "id": self.id}

    def entity(self) -> dict[str, Any]:
        return {"uid": self.uid(), "attrs": to_cedar(dict(self.attrs)), "parents": []}


@dataclass(frozen=True)
class Decision:
    """Cedar's answer: allowed or not, the policies that decided it, evaluation errors."""

    allowed: bool
    reasons: tuple[str, ...]
    errors: tuple[str, ...]
    policy_set: str

    @property
    def label(self) -> str:
        return "allow" if self.allowed else "deny"


class Policies:
    """A parsed Cedar policy set with a content hash.

    Args:
        texts: file name -> Cedar policy text.
        schema: optional Cedar schema text; when given, every policy is validated against it at
            load (a misspelt attribute is an error here, not a silent deny later).
    """

    def __init__(self, texts: Mapping[str, str], schema: str | None = None) -> None:
        if not texts:
            raise ConfigError("a policy set needs at least one .cedar file")
        self.texts = dict(sorted(texts.items()))
        self.schema = schema
        merged: dict[str, Any] = {}
        for name, text in self.texts.items():
            stem = Path(name).stem
            try:
                parsed = json.loads(cedarpy.policies_to_json_str(text))
            except (ValueError, RuntimeError) as exc:
                raise ConfigError(f"{name}: not valid Cedar: {exc}") from exc
            if parsed.get("templates"):
                raise ConfigError(f"{name}: policy templates are not supported")
            for auto_id, policy in parsed["staticPolicies"].items():
                pid = f"{stem}/{(policy.get('annotations') or {}).get('id', auto_id)}"
                if pid in merged:
                    raise ConfigError(f"{name}: policy id {pid!r} is used twice")
                merged[pid] = policy
            if schema is not None:
                result = cedarpy.validate_policies(text, schema)
                if not result.validation_passed:
                    errors = "; ".join(e.error for e in result.errors)
                    raise ConfigError(f"{name}: does not match the schema: {errors}")
        self.ids = tuple(merged)
        self._cedar = cedarpy.PolicySet.from_json_str(
            json.dumps({"staticPolicies": merged, "templates": {}, "templateLinks": []})
        )
        manifest = {"policies": self.texts, "schema": schema}
        self.canonical = canonical_json(manifest)
        self.hash = "sha256:" + sha256_hex(self.canonical)

    @classmethod
    def from_dir(cls, folder: str | Path = POLICY_DIR, pattern: str = "*.cedar") -> Policies:
        """Every ``.cedar`` file in ``folder``; a single ``.cedarschema`` there is the schema."""
        folder = Path(folder)
        files = sorted(folder.glob(pattern))
        if not files:
            raise ConfigError(f"{folder}: no {pattern} policy files")
        schemas = sorted(folder.glob("*.cedarschema"))
        if len(schemas) > 1:
            raise ConfigError(f"{folder}: more than one .cedarschema file")
        schema = schemas[0].read_text(encoding="utf-8") if schemas else None
        return cls({f.name: f.read_text(encoding="utf-8") for f in files}, schema)

    def authorize(
        self,
        principal: str,
        action: str,
        resource: Resource,
        context: Mapping[str, Any] | None = None,
        principal_attrs: Mapping[str, Any] | None = None,
    ) -> Decision:
        """Ask Cedar whether agent ``principal`` may take ``action`` on ``resource``."""
        request = {
            "principal": {"type": "Agent", "id": principal},
            "action": {"type": "Action", "id": action},
            "resource": resource.uid(),
            "context": to_cedar(dict(context or {})),
        }
        entities = [
            {
                "uid": {"type": "Agent", "id": principal},
                "attrs": to_cedar(dict(principal_attrs or {})),
                "parents": [],
            },
            resource.entity(),
        ]
        result = cedarpy.is_authorized(request, self._cedar, entities)
        errors = tuple(str(e) for e in result.diagnostics.errors)
        allowed = bool(result.allowed) and not errors
        return Decision(allowed, tuple(result.diagnostics.reasons), errors, self.hash)

    def authorize_many(
        self,
        principal: str,
        action: str,
        resources: Sequence[Resource],
        context: Mapping[str, Any] | None = None,
    ) -> list[bool]:
        """Whether ``principal`` may take ``action`` on each resource: one batched Cedar call.

        For per-item checks on a hot path (a served list of items); evaluation errors deny.
        """
        if not resources:
            return []
        ctx = to_cedar(dict(context or {}))
        principal_uid = {"type": "Agent", "id": principal}
        requests = [
            {
                "principal": principal_uid,
                "action": {"type": "Action", "id": action},
                "resource": r.uid(),
                "context": ctx,
            }
            for r in resources
        ]
        entities = [{"uid": principal_uid, "attrs": {}, "parents": []}]
        entities += [r.entity() for r in resources]
        results = cedarpy.is_authorized_batch(requests, self._cedar, entities)
        return [bool(r.allowed) and not r.diagnostics.errors for r in results]
