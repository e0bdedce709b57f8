"""Ed25519 keys and signed checkpoints (a signed statement "the log had this many entries and
this root").

The key is created on first use, written with mode 0600 and never overwritten; four processes that
start at once all end up with the same key (the file is published with a hard link, which fails if
another process got there first). A checkpoint signs the log id and its own sequence number, so a
checkpoint copied from another log or moved to another position no longer verifies.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from recfuse.errors import ConfigError

CHECKPOINT_FORMAT = "recfuse-ledger/checkpoint/v1"


def load_or_create_key(path: str | Path) -> Ed25519PrivateKey:
    """The Ed25519 private key at ``path``; created (mode 0600) if the file does not exist."""
    path = Path(path)
    if not path.exists():
        _create_key(path)
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path}: signing key is readable by others (mode {oct(mode & 0o777)}); chmod 600 it"
        )
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as exc:
        raise ConfigError(f"{path}: not a PEM private key ({exc})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: not an Ed25519 key")
    return key


def _create_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):  # another process published its key first
            os.link(tmp, path)  # atomic publish of a complete file
    finally:
        tmp.unlink(missing_ok=True)


def public_key_bytes(key: Ed25519PrivateKey) -> bytes:
    """The 32-byte raw public key."""
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: bytes) -> str:
    """A short name for a public key: the first 8 bytes of its SHA-256, in hex."""
    return hashlib.sha256(public_key).hexdigest()[:16]


@dataclass(frozen=True)
class Checkpoint:
    """A signed tree head: log ``log_id`` held ``tree_size`` entries with root ``root`` at ``time``."""

    log_id: str
    seq: int
    tree_size: int
    root: bytes
    time: str
    key_id: str
    signature: bytes

    def message(self) -> bytes:
        """The exact bytes that are signed."""
        return checkpoint_message(self.log_id, self.seq, self.tree_size, self.root, self.time)

    def verify(self, public_key: bytes) -> bool:
        """True iff the signature is valid for ``public_key`` (raw 32 bytes)."""
        if key_id(public_key) != self.key_id:
            return False
        try:
            Ed25519PublicKey.from_public_bytes(public_key).verify(self.signature, self.message())
        except (InvalidSignature, ValueError):
            return False
        return True

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["root"] = self.root.hex()
        out["signature"] = self.signature.hex()
        out["format"] = CHECKPOINT_FORMAT
        return out

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Checkpoint:
        try:
            return cls(
                str(obj["log_id"]), int(obj["seq"]), int(obj["tree_size"]),
                bytes.fromhex(obj["root"]), str(obj["time"]), str(obj["key_id"]),
                bytes.fromhex(obj["signature"]),
            )  # fmt: skip
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"not a checkpoint: {exc}") from exc


def checkpoint_message(log_id: str, seq: int, tree_size: int, root: bytes, time: str) -> bytes:
    """Line-oriented, unambiguous text: format, log, sequence, size, root, time."""
    return (
        f"{CHECKPOINT_FORMAT}\nlog {log_id}\nseq {seq}\nsize {tree_size}\n"
        f"root {root.hex()}\ntime {time}\n"
    ).encode()


def sign_checkpoint(
    key: Ed25519PrivateKey, log_id: str, seq: int, tree_size: int, root: bytes, time: str
) -> Checkpoint:
    """Sign a tree head with ``key``."""
    signature = key.sign(checkpoint_message(log_id, seq, tree_size, root, time))
    return Checkpoint(log_id, seq, tree_size, root, time, key_id(public_key_bytes(key)), signature)
