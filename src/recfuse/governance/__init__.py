"""Governed agents: a Cedar policy gate and a tamper-evident RFC 6962 ledger for every action.

- `Ledger`: append-only Merkle log in SQLite, signed checkpoints, inclusion/consistency proofs.
- `verify_ledger`: recompute everything and name the first bad row.
- `Policies`: Cedar policy set (default deny, fail closed), hashed.
- `Governor` / `governed`: gate + log around any function.
- `GovernedToolbox` / `Agent`: MCP-schema tools and a perceive -> conceptualize -> act cycle.
"""

from __future__ import annotations

import importlib
from typing import Any

# Lazy: the MCP SDK takes seconds to import, and a ledger user should not pay for it.
_HOMES = {
    "Agent": "agent",
    "Outcome": "agent",
    "Proposal": "agent",
    "Governor": "governor",
    "PolicyDenied": "governor",
    "governed": "governor",
    "Ledger": "ledger",
    "Decision": "policy",
    "Policies": "policy",
    "Resource": "policy",
    "GovernedToolbox": "toolbox",
    "verify_ledger": "verify",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'recfuse.governance' has no attribute {name!r}")
    return getattr(importlib.import_module(f"recfuse.governance.{_HOMES[name]}"), name)
