"""Where dataset files come from: a named folder, ../shared/data, a user cache, or a checked download.

Lookup order for a dataset folder NAME:
1. ``data_dir`` argument or ``RECFUSE_DATA_DIR``: ``<dir>/NAME``;
2. ``../shared/data/NAME`` beside the checkout;
3. the user cache, ``$RECFUSE_CACHE/data/NAME`` (default ``~/.cache/recfuse/data/NAME``);
4. download each file from its official source into the user cache, verified by SHA-256.

A folder named explicitly (1.) that holds ``NAME/`` is used or refused, never skipped: a file
missing there is an error. Every file the catalog pins by SHA-256 is checked wherever it was found
(half a file is not "ready"): ``recfuse data prepare`` always rehashes; other loads reuse a
previous check while the file's size and modification time are unchanged (kept in
``$RECFUSE_CACHE/checksums.json``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from recfuse.errors import DataError

CHECKOUT_ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class RemoteFile:
    """One data file: its name inside the dataset folder, its official URL and SHA-256."""

    name: str
    url: str
    sha256: str


def cache_root() -> Path:
    """The user cache folder for data, features and LLM outputs."""
    return Path(os.environ.get("RECFUSE_CACHE", Path.home() / ".cache" / "recfuse"))


def candidate_dirs(name: str, data_dir: str | Path | None = None) -> list[Path]:
    """Folders searched for dataset ``name``, in order."""
    dirs: list[Path] = []
    explicit = data_dir or os.environ.get("RECFUSE_DATA_DIR")
    if explicit:
        dirs.append(Path(explicit) / name)
    dirs.append(CHECKOUT_ROOT.parent / "shared" / "data" / name)
    dirs.append(cache_root() / "data" / name)
    return dirs


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(remote: RemoteFile, target: Path) -> None:
    """Download to a temp file in the target folder, verify, then rename: never a half file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{remote.name}.")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(remote.url, timeout=60) as resp:
            while block := resp.read(1 << 20):
                out.write(block)
        got = sha256_of(Path(tmp))
        if got != remote.sha256:
            raise DataError(
                f"{remote.url}: SHA-256 {got} does not match the expected {remote.sha256}"
            )
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def locate(
    name: str,
    files: tuple[RemoteFile, ...] | tuple[str, ...],
    data_dir: str | Path | None = None,
    *,
    download: bool = True,
    rehash: bool = False,
) -> Path:
    """Return the first folder that holds every file of dataset ``name``, checksums checked.

    ``files`` are plain names (no download possible) or `RemoteFile` entries. ``rehash`` hashes
    every pinned file even when the size-and-mtime cache says it was checked. Raises `DataError`
    with the folders searched and where to put the files when nothing is found, when an explicit
    folder lacks a file, or when a file does not match its SHA-256.
    """
    names = [f.name if isinstance(f, RemoteFile) else f for f in files]
    dirs = candidate_dirs(name, data_dir)
    explicit = data_dir or os.environ.get("RECFUSE_DATA_DIR")
    if explicit and dirs[0].is_dir():
        missing = [n for n in names if not (dirs[0] / n).is_file()]
        if missing:
            source = "--data-dir" if data_dir else "RECFUSE_DATA_DIR"
            raise DataError(
                f"{dirs[0]}: dataset folder named by {source} lacks {', '.join(missing)} "
                "(an explicit folder is never skipped for another one)"
            )
    for folder in dirs:
        if all((folder / n).is_file() for n in names):
            check_checksums(folder, files, rehash=rehash)
            return folder
    remotes = [f for f in files if isinstance(f, RemoteFile)]
    if download and remotes and len(remotes) == len(files):
        target = cache_root() / "data" / name
        try:
            for remote in remotes:
                if not (target / remote.name).is_file():
                    _download(remote, target / remote.name)
        except OSError as exc:
            raise DataError(
                f"dataset {name!r}: not found in {', '.join(map(str, dirs))} and the download "
                f"failed ({exc}); put {', '.join(names)} into {dirs[0]}"
            ) from None
        check_checksums(target, files, rehash=rehash)
        return target
    raise DataError(
        f"dataset {name!r}: files {', '.join(names)} not found; put them into one of "
        f"{', '.join(map(str, dirs))} (or pass --data-dir / set RECFUSE_DATA_DIR)"
    )


def checksum_cache_path() -> Path:
    return cache_root() / "checksums.json"


def _load_checksum_cache() -> dict[str, list[object]]:
    try:
        value = json.loads(checksum_cache_path().read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}  # no cache or a damaged one: everything is simply hashed again
    return value if isinstance(value, dict) else {}


def check_checksums(
    folder: Path, files: tuple[RemoteFile, ...] | tuple[str, ...], *, rehash: bool = False
) -> None:
    """Every pinned file in ``folder`` must hash to the catalog's SHA-256 (else `DataError`).

    A file whose (size, mtime) matches the last successful check is not hashed again unless
    ``rehash``; a failed check is never cached.
    """
    from recfuse.atomic import write_json

    cache = _load_checksum_cache()
    changed = False
    for remote in files:
        if not isinstance(remote, RemoteFile):
            continue  # no published checksum for this file
        path = folder / remote.name
        stat = path.stat()
        key = str(path.resolve())
        stamp = [stat.st_size, stat.st_mtime_ns, remote.sha256]
        if not rehash and cache.get(key) == stamp:
            continue
        got = sha256_of(path)
        if got != remote.sha256:
            raise DataError(
                f"{path}: SHA-256 {got} does not match the catalog's {remote.sha256} "
                f"({stat.st_size:,} bytes): the file is truncated or not the published one; "
                "replace it with the official file (see SOURCE.md)"
            )
        cache[key], changed = stamp, True
    if changed:
        with contextlib.suppress(OSError):  # a read-only cache only costs hashing again
            write_json(checksum_cache_path(), cache)
