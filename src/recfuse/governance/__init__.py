"""Governed agents: a Cedar policy gate and a tamper-evident RFC 6962 ledger for every action.

- `Ledger`: append-only Merkle log in SQLite, signed checkpoints, inclusion/consistency proofs.
- `verify_ledger`: recompute everything and name the first bad row.
- `Policies`: Cedar policy set (default deny, fail closed), hashed.
- `Governor` / `governed`: gate + log around any function.
- `GovernedToolbox` / `Agent`: MCP-schema tools and a perceive -> conceptualize -> act cycle.
"""

from recfuse.governance.agent import Agent, Outcome, Proposal
from recfuse.governance.governor import Governor, PolicyDenied, governed
from recfuse.governance.ledger import Ledger
from recfuse.governance.policy import Decision, Policies, Resource
from recfuse.governance.toolbox import GovernedToolbox
from recfuse.governance.verify import verify_ledger

__all__ = [
    "Agent",
    "Decision",
    "GovernedToolbox",
    "Governor",
    "Ledger",
    "Outcome",
    "Policies",
    "PolicyDenied",
    "Proposal",
    "Resource",
    "governed",
    "verify_ledger",
]
