"""Proof bundles: one JSON document that lets anyone check that an entry is in a signed log.

A bundle holds the entry's exact bytes, its inclusion path, the signed checkpoint the path leads
to, and the signer's public key. `check_bundle` needs only SHA-256 and Ed25519 (no database); the
steps are spelled out in the bundle itself so it can be checked with any tool.
"""

from __future__ import annotations

import base64
from typing import Any

from recfuse.governance.ledger import Ledger
from recfuse.governance.merkle import leaf_hash
from recfuse.governance.proofs import root_from_inclusion, verify_consistency
from recfuse.governance.signing import Checkpoint

BUNDLE_FORMAT = "recfuse-ledger/inclusion-proof/v1"
HOW_TO_CHECK = [
    "leaf = SHA-256(0x00 || base64decode(entry_base64))",
    "walk inclusion_path from the leaf as in RFC 9162 section 2.1.3.2 with leaf_index and tree_size;"
    " each step is SHA-256(0x01 || left || right); the result must equal checkpoint.root",
    "the Ed25519 signature (checkpoint.signature) over the text lines "
    "'recfuse-ledger/checkpoint/v1', 'log <log_id>', 'seq <seq>', 'size <tree_size>', "
    "'root <root hex>', 'time <time>' (each ending in a newline) must verify with public_key",
]


def make_bundle(ledger: Ledger, index: int, sign_if_needed: bool = True) -> dict[str, Any]:
    """Inclusion proof of entry ``index`` against the earliest checkpoint that covers it.

    If no checkpoint covers it yet, a new one is signed (when ``sign_if_needed``).
    """
    body = ledger.body(index)
    cp = ledger.checkpoint_covering(index)
    if cp is None:
        if not sign_if_needed:
            raise ValueError(f"no checkpoint covers entry {index} yet")
        cp = ledger.checkpoint()
    public_key = ledger.public_key()
    return {
        "format": BUNDLE_FORMAT,
        "log_id": ledger.log_id,
        "leaf_index": index,
        "entry_base64": base64.b64encode(body).decode(),
        "entry": body.decode("utf-8", errors="replace"),
        "leaf_hash": leaf_hash(body).hex(),
        "tree_size": cp.tree_size,
        "inclusion_path": [h.hex() for h in ledger.inclusion_proof(index, cp.tree_size)],
        "checkpoint": cp.to_json(),
        "public_key": public_key.hex() if public_key else None,
        "how_to_check": HOW_TO_CHECK,
    }


def check_bundle(bundle: dict[str, Any], public_key: bytes | None = None) -> list[str]:
    """Problems with a bundle (empty: it proves what it says). ``public_key`` pins the signer."""
    problems = []
    try:
        body = base64.b64decode(bundle["entry_base64"], validate=True)
        index, size = int(bundle["leaf_index"]), int(bundle["tree_size"])
        path = [bytes.fromhex(h) for h in bundle["inclusion_path"]]
        cp = Checkpoint.from_json(bundle["checkpoint"])
        key = public_key or bytes.fromhex(bundle["public_key"] or "")
    except (KeyError, ValueError, TypeError) as exc:
        return [f"malformed bundle: {exc}"]
    leaf = leaf_hash(body)
    if bundle.get("leaf_hash") not in (None, leaf.hex()):
        problems.append("leaf_hash does not match the entry bytes")
    if cp.tree_size != size or cp.log_id != bundle.get("log_id"):
        problems.append("checkpoint is for another tree size or log")
    root = root_from_inclusion(index, size, leaf, path)
    if root is None or root != cp.root:
        problems.append("inclusion path does not lead from the entry to the checkpoint root")
    if not cp.verify(key):
        problems.append("checkpoint signature does not verify with the public key")
    return problems


def make_consistency(ledger: Ledger, old_seq: int, new_seq: int | None = None) -> dict[str, Any]:
    """Proof that checkpoint ``old_seq``'s log is a prefix of checkpoint ``new_seq``'s (default: latest)."""
    cps = ledger.checkpoints()
    old = cps[old_seq]
    new = cps[-1] if new_seq is None else cps[new_seq]
    proof = ledger.consistency_proof(old.tree_size, new.tree_size)
    return {
        "format": "recfuse-ledger/consistency-proof/v1",
        "old": old.to_json(),
        "new": new.to_json(),
        "proof": [h.hex() for h in proof],
        "public_key": (ledger.public_key() or b"").hex(),
        "consistent": verify_consistency(old.tree_size, new.tree_size, old.root, new.root, proof),
    }
