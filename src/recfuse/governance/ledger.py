"""`Ledger`: an append-only RFC 6962 Merkle log in SQLite, with signed checkpoints and proofs.

Tables (the whole state; `recfuse ledger verify` recomputes every hash from ``entries``):

- ``entries(idx, body)``: the canonical-JSON entry bytes; the body repeats its own index, so a row
  moved to another position no longer matches.
- ``nodes(level, idx, hash)``: every perfect-subtree hash (level 0 = leaf hashes). An append adds
  one leaf and the parents it completes, reading only the O(log n) frontier, so appends cost the
  same at any size and proofs are O(log n) lookups.
- ``checkpoints(seq, tree_size, root, time, key_id, signature)``: Ed25519-signed tree heads.
- ``blobs(digest, data)``: optional content behind the digests in entries (prompts, answers...).
- ``meta``: log id and public key.

Many processes may append at once: each append is one ``BEGIN IMMEDIATE`` transaction (SQLite's
write lock, waited for under a busy timeout), and the entry's index is read *inside* it, so two
writers can never take the same index. WAL mode lets readers run beside the writer.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recfuse.errors import ConfigError, DataError
from recfuse.governance.digest import canonical_json, sha256_hex
from recfuse.governance.merkle import (
    EMPTY_ROOT,
    NodeLookup,
    frontier_positions,
    leaf_hash,
    node_hash,
    root_from_frontier,
    subtree_hash,
)
from recfuse.governance.proofs import consistency_path, inclusion_path
from recfuse.governance.signing import (
    Checkpoint,
    load_or_create_key,
    public_key_bytes,
    sign_checkpoint,
)

FORMAT = "recfuse-ledger/v1"
RESERVED_FIELDS = ("index", "time")

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, body BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, "
    "hash BLOB NOT NULL, PRIMARY KEY (level, idx)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS checkpoints (seq INTEGER PRIMARY KEY, tree_size INTEGER NOT NULL, "
    "root BLOB NOT NULL, time TEXT NOT NULL, key_id TEXT NOT NULL, signature BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS blobs (digest TEXT PRIMARY KEY, data BLOB NOT NULL) WITHOUT ROWID",
)


def utc_now() -> str:
    """RFC 3339 UTC time with microseconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def open_read_only(path: str | Path) -> sqlite3.Connection:
    """Open exactly the file ``path`` names, read-only (``mode=ro``): nothing is ever written.

    The path is percent-encoded into the SQLite URI, so a name holding ``%41``, ``#`` or ``?``
    opens that very file and not another one. Raises `DataError` when there is no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no ledger file here")
    uri = "file:" + urllib.parse.quote(str(path.resolve()), safe="/") + "?mode=ro"
    return sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)


def default_key_path(db_path: str | Path) -> Path:
    """Where a ledger's signing key lives unless told otherwise: ``<db>.key`` beside it."""
    return Path(f"{db_path}.key")


class Ledger:
    """An append-only, tamper-evident log of JSON entries.

    Args:
        path: the SQLite file (created if missing).
        key_path: the Ed25519 signing key (created on first use, mode 0600); default ``<path>.key``.
        checkpoint_every: sign a checkpoint automatically after every this many entries (0: never;
            call `checkpoint` yourself).
        durable: ``True`` fsyncs every commit (``synchronous=FULL``, about 4-8 ms per append on
            the disks measured); ``False`` (default) uses WAL's ``NORMAL``: a commit survives a
            crashed process, and a power cut can lose the last commits but never corrupt, reorder
            or half-write the log.
        busy_timeout_s: how long a writer waits for another writer's lock.
        read_only: open an existing ledger without ever writing to it (for inspection commands:
            no tables or meta rows are created, appends and checkpoints raise).
    """

    def __init__(
        self,
        path: str | Path,
        key_path: str | Path | None = None,
        checkpoint_every: int = 0,
        durable: bool = False,
        busy_timeout_s: float = 60.0,
        read_only: bool = False,
    ) -> None:
        self.path = Path(path)
        self.key_path = Path(key_path) if key_path is not None else default_key_path(self.path)
        self.checkpoint_every = int(checkpoint_every)
        self.read_only = read_only
        self._lock = threading.RLock()
        self._key: Ed25519PrivateKey | None = None
        if read_only:
            self._conn = open_read_only(self.path)
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute(f"PRAGMA synchronous = {'FULL' if durable else 'NORMAL'}")
            self._create()
        try:
            meta = self.meta()
        except (sqlite3.DatabaseError, UnicodeDecodeError) as exc:
            self._conn.close()
            raise DataError(f"{self.path}: not a readable ledger ({exc})") from None
        if meta.get("format") != FORMAT or not meta.get("log_id"):
            self._conn.close()
            raise DataError(
                f"{self.path}: not a {FORMAT} ledger (format {meta.get('format')!r}, "
                f"log id {meta.get('log_id')!r}); run `recfuse ledger verify`"
            )
        self.log_id = meta["log_id"]

    def _create(self) -> None:
        with self._write() as conn:
            for statement in SCHEMA:
                conn.execute(statement)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('format', ?)", (FORMAT,))
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('log_id', ?)", (uuid.uuid4().hex,))

    # ----------------------------------------------------------------- plumbing
    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction holding SQLite's write lock from its first statement."""
        if self.read_only:
            raise ConfigError(f"{self.path}: opened read-only; this command does not write")
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def meta(self) -> dict[str, str]:
        with self._lock:
            return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())

    # ----------------------------------------------------------------- writing
    def append(self, fields: Mapping[str, Any], blobs: Mapping[str, bytes] | None = None) -> int:
        """Append one entry and return its index.

        ``fields`` must be JSON-serializable; the ledger adds ``index`` and ``time``. ``blobs`` maps
        ``sha256:<hex>`` digests to the bytes they name (kept beside the log, checked by verify).
        """
        return self.append_many([fields], [blobs or {}])[0]

    def append_many(
        self,
        many: list[Mapping[str, Any]],
        blobs: list[Mapping[str, bytes]] | None = None,
    ) -> list[int]:
        """Append several entries in one transaction (one fsync); returns their indices."""
        for fields in many:
            clash = [k for k in RESERVED_FIELDS if k in fields]
            if clash:
                raise ConfigError(f"ledger entry fields {clash} are set by the ledger itself")
        indices = []
        with self._write() as conn:
            size = self._size(conn)
            for offset, fields in enumerate(many):
                index = size + offset
                body = canonical_json({**fields, "index": index, "time": utc_now()})
                self._insert_leaf(conn, index, body)
                indices.append(index)
                for digest, data in ((blobs or [{}] * len(many))[offset] or {}).items():
                    if "sha256:" + sha256_hex(data) != digest:
                        raise ConfigError(f"blob for {digest} does not hash to it")
                    conn.execute("INSERT OR IGNORE INTO blobs VALUES (?, ?)", (digest, data))
            new_size = size + len(many)
            every = self.checkpoint_every
            if every and new_size // every > size // every:
                self._checkpoint(conn, new_size)
        return indices

    @staticmethod
    def _size(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries").fetchone()[0])

    @staticmethod
    def _insert_leaf(conn: sqlite3.Connection, index: int, body: bytes) -> None:
        conn.execute("INSERT INTO entries VALUES (?, ?)", (index, body))
        h, level, i = leaf_hash(body), 0, index
        conn.execute("INSERT INTO nodes VALUES (0, ?, ?)", (i, h))
        while i & 1:  # this leaf completes a perfect subtree: store its parent, and so on up
            row = conn.execute(
                "SELECT hash FROM nodes WHERE level = ? AND idx = ?", (level, i - 1)
            ).fetchone()
            if row is None:
                raise DataError(
                    f"ledger node ({level}, {i - 1}) is missing; run `recfuse ledger verify`"
                )
            h = node_hash(row[0], h)
            level, i = level + 1, i >> 1
            conn.execute("INSERT INTO nodes VALUES (?, ?, ?)", (level, i, h))

    def checkpoint(self) -> Checkpoint:
        """Sign the current tree head (creating the key on first use) and store it."""
        with self._write() as conn:
            return self._checkpoint(conn, self._size(conn))

    def _signing_key(self, conn: sqlite3.Connection) -> tuple[Ed25519PrivateKey, bytes]:
        if self._key is None:
            self._key = load_or_create_key(self.key_path)
        public = public_key_bytes(self._key)
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('public_key', ?)", (public.hex(),))
        stored = conn.execute("SELECT value FROM meta WHERE key = 'public_key'").fetchone()[0]
        if stored != public.hex():
            raise ConfigError(
                f"{self.key_path}: this key is not the one {self.path} was signed with "
                f"(ledger public key {stored})"
            )
        return self._key, public

    def _checkpoint(self, conn: sqlite3.Connection, size: int) -> Checkpoint:
        key, _ = self._signing_key(conn)
        root = self._root(conn, size)
        seq = int(conn.execute("SELECT COALESCE(MAX(seq) + 1, 0) FROM checkpoints").fetchone()[0])
        cp = sign_checkpoint(key, self.log_id, seq, size, root, utc_now())
        conn.execute(
            "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?)",
            (cp.seq, cp.tree_size, cp.root, cp.time, cp.key_id, cp.signature),
        )
        return cp

    # ----------------------------------------------------------------- reading
    def size(self) -> int:
        with self._lock:
            return self._size(self._conn)

    def body(self, index: int) -> bytes:
        """The stored bytes of entry ``index``."""
        with self._lock:
            row = self._conn.execute("SELECT body FROM entries WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise DataError(f"{self.path}: no entry {index} (the log has {self.size()})")
        return bytes(row[0])

    def entry(self, index: int) -> dict[str, Any]:
        return self._decode(index, self.body(index))

    def entries(self, start: int = 0, stop: int | None = None) -> Iterator[dict[str, Any]]:
        stop = self.size() if stop is None else stop
        with self._lock:
            rows = self._conn.execute(
                "SELECT idx, body FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
                (start, stop),
            ).fetchall()
        for idx, body in rows:
            yield self._decode(idx, body)

    def _decode(self, index: int, body: object) -> dict[str, Any]:
        """An entry's JSON object; a damaged body is a `DataError` naming the entry."""
        try:
            value = json.loads(body if isinstance(body, bytes | str) else b"")
        except (ValueError, RecursionError):
            value = None
        if not isinstance(value, dict):
            raise DataError(
                f"{self.path}: entry {index}: body is not a JSON object; run `recfuse ledger verify`"
            )
        return value

    def blob(self, digest: str) -> bytes | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT data FROM blobs WHERE digest = ?", (digest,)
            ).fetchone()
        return None if row is None else bytes(row[0])

    def _node_lookup(self, conn: sqlite3.Connection) -> NodeLookup:
        def node(level: int, index: int) -> bytes:
            row = conn.execute(
                "SELECT hash FROM nodes WHERE level = ? AND idx = ?", (level, index)
            ).fetchone()
            if row is None:
                raise DataError(f"{self.path}: tree node ({level}, {index}) is missing")
            return bytes(row[0])

        return node

    def _root(self, conn: sqlite3.Connection, size: int) -> bytes:
        if size == 0:
            return EMPTY_ROOT
        node = self._node_lookup(conn)
        return root_from_frontier([node(level, i) for level, i in frontier_positions(size)])

    def root(self, size: int | None = None) -> bytes:
        """The tree head for the first ``size`` entries (default: all)."""
        with self._lock:
            size = self._size(self._conn) if size is None else size
            return self._root(self._conn, size)

    def leaf(self, index: int) -> bytes:
        with self._lock:
            return self._node_lookup(self._conn)(0, index)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path of entry ``index`` in the tree of the first ``size`` entries."""
        with self._lock:
            size = self._size(self._conn) if size is None else size
            return inclusion_path(index, size, self._node_lookup(self._conn))

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Proof that the first ``old_size`` entries are a prefix of the first ``new_size``."""
        with self._lock:
            new_size = self._size(self._conn) if new_size is None else new_size
            return consistency_path(old_size, new_size, self._node_lookup(self._conn))

    def subtree(self, start: int, end: int) -> bytes:
        with self._lock:
            return subtree_hash(start, end, self._node_lookup(self._conn))

    def checkpoints(self) -> list[Checkpoint]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, tree_size, root, time, key_id, signature FROM checkpoints ORDER BY seq"
            ).fetchall()
        return [
            Checkpoint(self.log_id, seq, size, bytes(root), time, kid, bytes(sig))
            for seq, size, root, time, kid, sig in rows
        ]

    def public_key(self) -> bytes | None:
        value = self.meta().get("public_key")
        return None if value is None else bytes.fromhex(value)

    def checkpoint_covering(self, index: int) -> Checkpoint | None:
        """The earliest checkpoint whose tree contains entry ``index``."""
        for cp in self.checkpoints():
            if cp.tree_size > index:
                return cp
        return None
