"""Full verification of a ledger file: recompute every hash and name the first bad row.

Nothing stored is trusted: SQLite's own page structure is checked first (``PRAGMA quick_check``),
every column must hold the type the schema gives it, leaf hashes are recomputed from the entry
bytes, every interior node from its children, every checkpoint root from the recomputed tree,
every signature against the public key (the one in the file, or one the caller pins). A finding
names its table and row, and the entry it implicates where there is one, so a reader sees *where*
the log was changed. No stored value can make verification crash or allocate without bound: an
index far outside the log is a finding, a gap is counted arithmetically, and every decode or type
error becomes a finding.

A rewrite that also recomputes the tree is only visible through a signature: entries that no
verified checkpoint covers are reported, and are a failure whenever the log has a signing key
(``require_coverage``). A witness checkpoint kept outside the file (``recfuse ledger checkpoint >
witness.json``) is what exposes a rewrite that deletes the checkpoints too, or the key with them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recfuse.governance.digest import sha256_hex
from recfuse.governance.ledger import FORMAT, SCHEMA, default_key_path, open_read_only
from recfuse.governance.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    all_levels,
    frontier_positions,
    leaf_hash,
    root_from_frontier,
)
from recfuse.governance.signing import Checkpoint, key_id

MISSING = b"\x00" * 32  # stands in for a hash that cannot be recomputed (its entry is gone)
MAX_LEVEL = 63  # a tree of 2**63 leaves is beyond any file; a higher level is a bad row
SIGNATURE_SIZE = 64
META_KEYS = ("format", "log_id", "public_key")
MAX_FINDINGS_PER_CHECK = 50  # a badly corrupted file lists this many problems per check, not all
Witness = tuple[Checkpoint, bytes | None]  # a checkpoint kept elsewhere, and the key it names


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
    covered: int = 0  # entries 0..covered-1 are under a verified signed checkpoint (or witness)
    has_key: bool = False
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def uncovered(self) -> tuple[int, int] | None:
        """First and last entry that no verified checkpoint covers, or None."""
        return (self.covered, self.size - 1) if self.size > self.covered else None

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


def verify_ledger(
    path: str | Path,
    public_key: bytes | None = None,
    *,
    witnesses: Sequence[Witness] = (),
    require_coverage: bool = True,
) -> VerifyReport:
    """Recompute everything in the ledger at ``path`` (opened read-only; never written).

    Args:
        public_key: pins the signer (raw 32 bytes); default: the key stored in the file.
        witnesses: (checkpoint, its public key or None) pairs kept outside the file; the log
            must extend each of them (a pinned ``public_key`` overrides the witness's own key).
        require_coverage: entries no verified checkpoint covers are a finding when the log has a
            key (a ``public_key`` meta row, a checkpoint, a pinned key or a ``<db>.key`` file).
    Raises `DataError` only when ``path`` is not a file; everything else is a finding.
    """
    path = Path(path)
    report = VerifyReport(str(path))
    conn = open_read_only(path)
    # Text that is not UTF-8 is read with U+FFFD in place, so it fails the checks it is part of
    # (a located finding) instead of raising while the row is fetched.
    conn.text_factory = lambda raw: raw.decode("utf-8", errors="replace")
    try:
        _verify(conn, report, path, public_key, witnesses, require_coverage)
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        # a page that quick_check let through, then failed (SQLite's own message may even
        # hold bytes that are not UTF-8: Python then raises UnicodeDecodeError)
        report.findings.append(Finding("sqlite", "file", f"unreadable ({exc})"))
    finally:
        conn.close()
    return report


def _verify(
    conn: sqlite3.Connection,
    report: VerifyReport,
    path: Path,
    pinned: bytes | None,
    witnesses: Sequence[Witness],
    require_coverage: bool,
) -> None:
    add = report.findings.append
    if not _sqlite_sound(conn, add):
        return
    log_id, stored_key = _check_meta(conn, add)
    public_key = pinned if pinned is not None else stored_key
    if pinned is not None and stored_key is not None and stored_key != pinned:
        add(Finding("meta", "public_key", "the file's public key is not the pinned one"))
    tree = _Tree.build(conn, add)
    report.size = tree.n
    report.root = tree.root_at(tree.n).hex()
    cps = _read_checkpoints(conn, log_id, add)
    report.checkpoints = len(cps)
    covered = _check_checkpoints(cps, public_key, tree, add)
    covered = max(covered, _check_witnesses(witnesses, log_id, pinned, tree, add))
    report.covered = min(covered, tree.n)
    report.blobs = _check_blobs(conn, add)
    report.has_key = bool(
        public_key is not None or cps or default_key_path(path).exists() or witnesses
    )
    # Coverage matters for a log that is otherwise consistent; a damaged one already fails.
    if require_coverage and report.has_key and report.uncovered and not report.findings:
        first, last = report.uncovered
        add(
            Finding(
                "entries",
                f"{first}..{last}",
                f"entries {first}..{last} are not covered by any verified signed checkpoint, so "
                "they could have been rewritten; sign one (`recfuse ledger checkpoint`) or check "
                "against a witness (`--witness`)",
                first,
            )
        )


# ---------------------------------------------------------------- SQLite and meta


def _expected_schema() -> dict[str, str]:
    """Table name -> the CREATE statement SQLite stores for it (without IF NOT EXISTS)."""
    out = {}
    for statement in SCHEMA:
        sql = statement.replace("IF NOT EXISTS ", "")
        out[sql.split()[2]] = sql
    return out


def _sqlite_sound(conn: sqlite3.Connection, add: Any) -> bool:
    """SQLite's page-level check and the schema; False when nothing further can be trusted."""
    try:
        problems = [str(r[0]) for r in conn.execute("PRAGMA quick_check(20)")]
    except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
        add(Finding("sqlite", "file", f"not a readable SQLite file ({exc})"))
        return False
    if problems != ["ok"]:
        for problem in problems:
            add(Finding("sqlite", "quick_check", f"corrupted file: {problem}"))
    expected = _expected_schema()
    found: dict[str, Any] = {}
    for kind, name, table, sql in conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master"
    ):
        if (kind, name, table, sql) == ("index", "sqlite_autoindex_meta_1", "meta", None):
            continue
        found[str(name)] = sql
        if kind != "table" or table != name or expected.get(str(name)) != sql:
            add(Finding("schema", str(name), f"unexpected {kind} definition: {sql!r}"))
    missing = [t for t in expected if t not in found]
    for table in missing:
        add(Finding("schema", table, "table is missing"))
    return not missing


def _check_meta(conn: sqlite3.Connection, add: Any) -> tuple[str, bytes | None]:
    """The log id and the stored public key (None if absent or unreadable)."""
    meta: dict[str, str] = {}
    for key, value in conn.execute("SELECT key, value FROM meta"):
        if not isinstance(key, str) or key not in META_KEYS:
            add(Finding("meta", repr(key)[:40], "unknown meta key"))
        elif not isinstance(value, str):
            add(Finding("meta", key, f"value is {type(value).__name__}, not text"))
        else:
            meta[key] = value
    if meta.get("format") != FORMAT:
        add(Finding("meta", "format", f"format is {meta.get('format')!r}, not {FORMAT!r}"))
    log_id = meta.get("log_id", "")
    if not _is_hex(log_id, 16):
        add(Finding("meta", "log_id", f"the log id is missing or malformed ({log_id!r:.40})"))
    stored = meta.get("public_key")
    if stored is None:
        return log_id, None
    if not _is_hex(stored, 32):
        add(Finding("meta", "public_key", "stored public key is not 32 bytes of hex"))
        return log_id, None
    return log_id, bytes.fromhex(stored)


def _is_hex(text: str, n_bytes: int) -> bool:
    return len(text) == 2 * n_bytes and all(c in "0123456789abcdef" for c in text)


def _limited(add: Any) -> Any:
    """``add`` that stops after `MAX_FINDINGS_PER_CHECK` findings, then says how many were cut."""
    count = [0]

    def limited(finding: Finding) -> None:
        count[0] += 1
        if count[0] <= MAX_FINDINGS_PER_CHECK:
            add(finding)
        elif count[0] == MAX_FINDINGS_PER_CHECK + 1:
            add(Finding(finding.table, "...", "more problems of this kind not listed"))

    return limited


# ---------------------------------------------------------------- entries and nodes


@dataclass
class _Tree:
    """The tree recomputed from the entry rows, and which leaves are known bad."""

    leaves: list[bytes]
    bad: set[int]
    levels: list[list[bytes]]

    @property
    def n(self) -> int:
        return len(self.leaves)

    def root_at(self, size: int) -> bytes:
        if size == 0:
            return EMPTY_ROOT
        return root_from_frontier([self.levels[lv][i] for lv, i in frontier_positions(size)])

    @classmethod
    def build(cls, conn: sqlite3.Connection, add: Any) -> _Tree:
        add = _limited(add)
        n_rows = int(conn.execute("SELECT count(*) FROM entries").fetchone()[0])
        n_nodes = int(conn.execute("SELECT count(*) FROM nodes").fetchone()[0])
        # A real log has indices 0..n-1 for its n rows; deletions leave leaf nodes behind. An
        # index beyond this bound cannot belong to the log, however the file was changed.
        limit = 2 * (n_rows + n_nodes) + 1024
        leaves: list[bytes] = []
        bad: set[int] = set()
        rows = conn.execute("SELECT idx, body FROM entries ORDER BY idx")
        for idx, body in _valid_entry_rows(rows, limit, add):
            if idx > len(leaves):  # a gap: rows deleted
                _gap(leaves, bad, idx, "row missing (deleted)", add)
            leaves.append(leaf_hash(body))
            if not _body_names_itself(idx, body, add):
                bad.add(idx)
        stored = _stored_nodes(conn, limit, add)
        tail = max((i for lv, i in stored if lv == 0), default=-1) + 1
        if tail > len(leaves):  # rows at the end gone, their leaf hashes still in the tree
            start = len(leaves)
            _gap(leaves, bad, tail, "row missing (its leaf hash is still in the tree)", add)
            for j in range(start, tail):
                leaves[j] = stored.get((0, j), MISSING)
        for i, h in enumerate(leaves):
            if i not in bad and stored.get((0, i)) != h:
                bad.add(i)
                what = (
                    "leaf hash missing from the tree"
                    if (0, i) not in stored
                    else "entry bytes do not match the stored leaf hash (entry or leaf altered)"
                )
                add(Finding("entries", str(i), what, i))
        tree = cls(leaves, bad, all_levels(leaves))
        tree.check_nodes(stored, add)
        return tree

    def check_nodes(self, stored: dict[tuple[int, int], bytes], add: Any) -> None:
        for lv in range(1, len(self.levels)):
            span = 1 << lv
            for i, h in enumerate(self.levels[lv]):
                if stored.get((lv, i)) == h or self._explained(i * span, span):
                    continue
                state = "missing" if (lv, i) not in stored else "does not match its children"
                last = (i + 1) * span - 1
                add(
                    Finding(
                        "nodes", f"({lv}, {i})", f"node over entries {i * span}..{last} {state}"
                    )
                )
        for lv, i in stored:
            beyond = lv >= len(self.levels) or i >= len(self.levels[lv])
            if lv >= 1 and beyond and not self._explained(i << lv, 1 << lv):
                add(Finding("nodes", f"({lv}, {i})", "node beyond the end of the log"))

    def _explained(self, first: int, span: int) -> bool:
        """Whether a bad leaf under this node already explains a node mismatch."""
        if span > len(self.bad):
            return any(first <= j < first + span for j in self.bad)
        return any(j in self.bad for j in range(first, first + span))


def _valid_entry_rows(
    rows: Iterable[tuple[Any, Any]], limit: int, add: Any
) -> Iterator[tuple[int, bytes]]:
    """Entry rows whose index and body have the types the schema gives; the rest are findings."""
    for idx, body in rows:
        if not isinstance(idx, int) or not 0 <= idx < limit:
            add(Finding("entries", repr(idx)[:24], "index far outside the log (a stray row)"))
        elif not isinstance(body, bytes):
            add(Finding("entries", str(idx), f"body is {type(body).__name__}, not bytes", idx))
            yield idx, str(body).encode()
        else:
            yield idx, body


def _gap(leaves: list[bytes], bad: set[int], upto: int, what: str, add: Any) -> None:
    """Entries ``len(leaves)..upto-1`` are missing: one finding for the range, not one per row."""
    first, last = len(leaves), upto - 1
    where = str(first) if first == last else f"{first}..{last}"
    plural = "" if first == last else f" ({last - first + 1} rows)"
    add(Finding("entries", where, what + plural, first))
    bad.update(range(first, upto))
    leaves.extend([MISSING] * (upto - first))


def _body_names_itself(idx: int, body: bytes, add: Any) -> bool:
    """The body must be a JSON object whose ``index`` is its own row index."""
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        add(Finding("entries", str(idx), "body is not valid JSON", idx))
        return False
    claimed = value.get("index") if isinstance(value, dict) else None
    if not isinstance(value, dict):
        add(Finding("entries", str(idx), "body is not a JSON object", idx))
        return False
    if claimed is not None and (type(claimed) is not int or claimed != idx):
        add(
            Finding("entries", str(idx), f"body says it is entry {claimed!r:.24} (rows moved)", idx)
        )
        return False
    return True


def _stored_nodes(conn: sqlite3.Connection, limit: int, add: Any) -> dict[tuple[int, int], bytes]:
    stored: dict[tuple[int, int], bytes] = {}
    for lv, i, h in conn.execute("SELECT level, idx, hash FROM nodes"):
        where = f"({lv!r:.24}, {i!r:.24})"
        if not (isinstance(lv, int) and isinstance(i, int)) or not 0 <= lv <= MAX_LEVEL:
            add(Finding("nodes", where, "level or index is not a valid position"))
        elif not 0 <= i << lv < limit:
            add(Finding("nodes", where, "node far beyond the end of the log"))
        elif not isinstance(h, bytes) or len(h) != HASH_SIZE:
            add(Finding("nodes", where, "hash is not 32 bytes", i if lv == 0 else None))
            stored[(lv, i)] = MISSING
        else:
            stored[(lv, i)] = h
    return stored


# ---------------------------------------------------------------- checkpoints and blobs


def _read_checkpoints(conn: sqlite3.Connection, log_id: str, add: Any) -> list[Checkpoint]:
    """Checkpoint rows with the column types the schema gives; the rest are findings."""
    out = []
    rows = conn.execute(
        "SELECT seq, tree_size, root, time, key_id, signature FROM checkpoints ORDER BY seq"
    )
    for seq, size, root, time, kid, sig in _limit_rows(rows, 100_000):
        types = (int, int, bytes, str, str, bytes)
        values = (seq, size, root, time, kid, sig)
        if not all(type(v) is t for v, t in zip(values, types, strict=True)):
            got = ", ".join(type(v).__name__ for v in values)
            add(
                Finding(
                    "checkpoints", f"seq {seq!r:.24}", f"row has the wrong column types ({got})"
                )
            )
        elif len(root) != HASH_SIZE or len(sig) != SIGNATURE_SIZE or size < 0:
            add(Finding("checkpoints", f"seq {seq}", "root, signature or size malformed"))
        else:
            out.append(Checkpoint(log_id, seq, size, root, time, kid, sig))
    return out


def _limit_rows(rows: Iterable[Any], limit: int) -> Iterator[Any]:
    for n, row in enumerate(rows):
        if n >= limit:
            return
        yield row


def _check_checkpoints(
    cps: list[Checkpoint], public_key: bytes | None, tree: _Tree, add: Any
) -> int:
    """Check signatures, order and roots; return how many entries verified checkpoints cover."""
    if cps and public_key is None:
        add(Finding("meta", "public_key", "checkpoints exist but no public key to check them"))
        return 0
    if not cps or public_key is None:
        return 0
    if all(cp.key_id != key_id(public_key) for cp in cps):
        add(Finding("meta", "public_key", "no checkpoint was signed with this public key"))
    last_good, prev_size, prev_time, unsigned, covered = 0, 0, "", 0, 0
    for expected_seq, cp in enumerate(cps):
        where = f"seq {cp.seq}"
        if cp.seq != expected_seq:
            add(
                Finding("checkpoints", where, f"sequence jumps from {expected_seq - 1} to {cp.seq}")
            )
        if not cp.verify(public_key):
            add(
                Finding(
                    "checkpoints",
                    where,
                    "signature does not verify (checkpoint altered, swapped or foreign)",
                )
            )
            unsigned += 1
            continue
        if cp.tree_size < prev_size or cp.time < prev_time:
            add(Finding("checkpoints", where, "goes back in size or time from the one before"))
        prev_size, prev_time = cp.tree_size, cp.time
        n = tree.n
        if cp.tree_size > n:
            detail = f"signed {cp.tree_size} entries; the log holds {n} (entries from {n} deleted)"
            add(Finding("checkpoints", where, detail, n))
        elif cp.root != tree.root_at(cp.tree_size):
            if not any(j < cp.tree_size for j in tree.bad):
                add(
                    Finding(
                        "checkpoints", where,
                        f"signed root differs from the log's: an entry in {last_good}..{cp.tree_size - 1} was rewritten",
                    )
                )  # fmt: skip
        else:
            last_good = cp.tree_size
            covered = max(covered, cp.tree_size)
    if unsigned == len(cps):
        add(
            Finding(
                "meta", "log_id", "no checkpoint verifies: the log id or public key was changed"
            )
        )
    return covered


def _check_witnesses(
    witnesses: Sequence[Witness], log_id: str, pinned: bytes | None, tree: _Tree, add: Any
) -> int:
    """Each witness must be signed and a prefix of this log; return the entries they cover."""
    covered = 0
    for cp, own_key in witnesses:
        where = f"seq {cp.seq} (size {cp.tree_size})"
        key = pinned if pinned is not None else own_key
        if cp.log_id != log_id:
            add(Finding("witness", where, f"witness is of log {cp.log_id}, not {log_id}"))
        elif key is None or not cp.verify(key):
            add(Finding("witness", where, "witness signature does not verify"))
        elif cp.tree_size > tree.n:
            add(
                Finding(
                    "witness", where,
                    f"witness saw {cp.tree_size} entries; the log holds {tree.n}", tree.n,
                )
            )  # fmt: skip
        elif tree.root_at(cp.tree_size) != cp.root:
            add(
                Finding(
                    "witness",
                    where,
                    f"the log's first {cp.tree_size} entries differ from what the witness signed",
                )
            )
        else:
            covered = max(covered, cp.tree_size)
    return covered


def _check_blobs(conn: sqlite3.Connection, add: Any) -> int:
    add = _limited(add)
    count = 0
    for digest, data in conn.execute("SELECT digest, data FROM blobs"):
        count += 1
        name = str(digest)[:23]
        if not isinstance(digest, str) or not isinstance(data, bytes):
            add(Finding("blobs", name, "digest or content has the wrong type"))
        elif "sha256:" + sha256_hex(data) != digest:
            add(Finding("blobs", name, "content does not hash to its digest"))
    return count
