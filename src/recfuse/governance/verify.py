"""Full verification of a ledger file: recompute every hash and name the first bad row.

Nothing stored is trusted: leaf hashes are recomputed from the entry bytes, every interior node
from its children, every checkpoint root from the recomputed tree, every signature against the
public key (the one in the file, or one the caller pins). A finding names its table and row, and
the entry it implicates where there is one, so a reader sees *where* the log was changed.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from recfuse.errors import DataError
from recfuse.governance.digest import sha256_hex
from recfuse.governance.ledger import FORMAT
from recfuse.governance.merkle import (
    EMPTY_ROOT,
    all_levels,
    frontier_positions,
    leaf_hash,
    root_from_frontier,
)
from recfuse.governance.signing import Checkpoint

MISSING = b"\x00" * 32  # stands in for a hash that cannot be recomputed (its entry is gone)


@dataclass(frozen=True)
class Finding:
    """One thing wrong: ``table`` and ``row`` locate it; ``entry`` is the log entry it implicates."""

    table: str
    row: str
    detail: str
    entry: int | None = None

    def __str__(self) -> str:
        where = f"entry {self.entry}" if self.entry is not None else f"{self.table} {self.row}"
        return f"{where}: {self.detail}"


@dataclass
class VerifyReport:
    path: str
    size: int = 0
    checkpoints: int = 0
    blobs: int = 0
    root: str = EMPTY_ROOT.hex()
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def first_bad_entry(self) -> int | None:
        entries = [f.entry for f in self.findings if f.entry is not None]
        return min(entries) if entries else None

    @property
    def first(self) -> Finding | None:
        """The finding to show first: the earliest entry, else the first row problem."""
        if not self.findings:
            return None
        with_entry = [f for f in self.findings if f.entry is not None]
        if with_entry:
            return min(with_entry, key=lambda f: f.entry if f.entry is not None else -1)
        return self.findings[0]


def verify_ledger(path: str | Path, public_key: bytes | None = None) -> VerifyReport:
    """Recompute everything in the ledger at ``path``; ``public_key`` pins the signer."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no ledger file here")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return _verify(conn, str(path), public_key)
    except sqlite3.DatabaseError as exc:
        raise DataError(f"{path}: not a readable ledger ({exc})") from exc
    finally:
        conn.close()


def _verify(conn: sqlite3.Connection, path: str, pinned_key: bytes | None) -> VerifyReport:
    report = VerifyReport(path)
    add = report.findings.append
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if meta.get("format") != FORMAT:
        add(Finding("meta", "format", f"format is {meta.get('format')!r}, not {FORMAT!r}"))
    if not meta.get("log_id"):
        add(Finding("meta", "log_id", "the log id is missing"))
    log_id = meta.get("log_id", "")
    stored_key = meta.get("public_key")
    public_key = pinned_key
    if stored_key is not None:
        try:
            from_file = bytes.fromhex(stored_key)
        except ValueError:
            from_file = b""
            add(Finding("meta", "public_key", "stored public key is not hex"))
        if pinned_key is not None and from_file != pinned_key:
            add(Finding("meta", "public_key", "the file's public key is not the pinned one"))
        public_key = public_key or from_file

    # ---- entries -> leaf hashes
    leaves: list[bytes] = []
    bad_leaf: set[int] = set()
    for idx, body in conn.execute("SELECT idx, body FROM entries ORDER BY idx"):
        while len(leaves) < idx:  # a gap: rows deleted
            bad_leaf.add(len(leaves))
            add(Finding("entries", str(len(leaves)), "row missing (deleted)", len(leaves)))
            leaves.append(MISSING)
        if idx < 0:
            add(Finding("entries", str(idx), "negative index", 0))
            continue
        data = body if isinstance(body, bytes) else str(body).encode()
        leaves.append(leaf_hash(data))
        try:
            claimed = json.loads(data).get("index")
        except (ValueError, AttributeError):
            claimed = None
            add(Finding("entries", str(idx), "body is not a JSON object", idx))
            bad_leaf.add(idx)
        if claimed is not None and claimed != idx:
            add(Finding("entries", str(idx), f"body says it is entry {claimed} (rows moved)", idx))
            bad_leaf.add(idx)

    # ---- stored nodes vs recomputed
    stored = {
        (lv, i): h if isinstance(h, bytes) else str(h).encode()
        for lv, i, h in conn.execute("SELECT level, idx, hash FROM nodes")
    }
    for lv, i in sorted(stored):  # leaf hashes of rows that are gone entirely (tail deleted)
        if lv == 0 and i >= len(leaves):
            for j in range(len(leaves), i + 1):
                leaves.append(stored.get((0, j), MISSING))
                if j not in bad_leaf:
                    bad_leaf.add(j)
                    add(
                        Finding(
                            "entries", str(j), "row missing (its leaf hash is still in the tree)", j
                        )
                    )
    for i, h in enumerate(leaves):
        if i in bad_leaf or h is MISSING:
            continue
        if stored.get((0, i)) != h:
            bad_leaf.add(i)
            what = (
                "leaf hash missing from the tree"
                if (0, i) not in stored
                else ("entry bytes do not match the stored leaf hash (entry or leaf altered)")
            )
            add(Finding("entries", str(i), what, i))
    n = len(leaves)
    report.size = n
    levels = all_levels(leaves)
    for lv in range(1, len(levels)):
        span = 1 << lv
        for i, h in enumerate(levels[lv]):
            if stored.get((lv, i)) == h:
                continue
            covered = range(i * span, (i + 1) * span)
            if any(j in bad_leaf for j in covered):
                continue  # explained by a bad entry below it
            state = "missing" if (lv, i) not in stored else "does not match its children"
            add(
                Finding(
                    "nodes",
                    f"({lv}, {i})",
                    f"node over entries {covered.start}..{covered.stop - 1} {state}",
                )
            )
    for lv, i in stored:
        if lv >= 1 and (lv >= len(levels) or i >= len(levels[lv])):
            first, span = i << lv, 1 << lv
            if not any(first <= j < first + span for j in bad_leaf):
                add(Finding("nodes", f"({lv}, {i})", "node beyond the end of the log"))

    def root_at(size: int) -> bytes:
        if size == 0:
            return EMPTY_ROOT
        return root_from_frontier([levels[lv][i] for lv, i in frontier_positions(size)])

    report.root = root_at(n).hex()

    # ---- checkpoints
    rows = conn.execute(
        "SELECT seq, tree_size, root, time, key_id, signature FROM checkpoints ORDER BY seq"
    ).fetchall()
    report.checkpoints = len(rows)
    if rows and public_key is None:
        add(Finding("meta", "public_key", "checkpoints exist but no public key to check them"))
    if rows and public_key is not None:
        # Every checkpoint names its signer; if none names this key, the key row was changed.
        from recfuse.governance.signing import key_id

        if all(str(r[4]) != key_id(public_key) for r in rows):
            add(Finding("meta", "public_key", "no checkpoint was signed with this public key"))
    last_good_size, prev_size, prev_time, unsigned = 0, 0, "", 0
    for expected_seq, (seq, size, root, time, kid, sig) in enumerate(rows):
        where = f"seq {seq}"
        if seq != expected_seq:
            add(Finding("checkpoints", where, f"sequence jumps from {expected_seq - 1} to {seq}"))
        try:
            cp = Checkpoint(
                log_id, int(seq), int(size), bytes(root), str(time), str(kid), bytes(sig)
            )
        except (TypeError, ValueError):
            add(Finding("checkpoints", where, "row has the wrong column types"))
            continue
        if public_key is not None and not cp.verify(public_key):
            add(
                Finding(
                    "checkpoints",
                    where,
                    "signature does not verify (checkpoint altered, swapped or foreign)",
                )
            )
            unsigned += 1
            continue
        if size < prev_size or time < prev_time:
            add(Finding("checkpoints", where, "goes back in size or time from the one before"))
        prev_size, prev_time = size, time
        if size > n:
            add(
                Finding(
                    "checkpoints",
                    where,
                    f"signed {size} entries; the log holds {n} (entries from {n} deleted)",
                    n,
                )
            )
        elif cp.root != root_at(size):
            if not any(j < size for j in bad_leaf):
                add(
                    Finding(
                        "checkpoints", where,
                        f"signed root differs from the log's: an entry in {last_good_size}..{size - 1} was rewritten",
                    )
                )  # fmt: skip
        else:
            last_good_size = size

    if rows and unsigned == len(rows):
        add(
            Finding(
                "meta", "log_id", "no checkpoint verifies: the log id or public key was changed"
            )
        )

    # ---- blobs
    for digest, data in conn.execute("SELECT digest, data FROM blobs"):
        report.blobs += 1
        raw = data if isinstance(data, bytes) else str(data).encode()
        if "sha256:" + sha256_hex(raw) != digest:
            add(Finding("blobs", str(digest)[:23], "content does not hash to its digest"))
    return report
