"""File readers that turn each published format into raw (user_id, item_id, time) rows.

Every reader reports problems as `DataError` naming the file and, where it can, the line.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recfuse.errors import DataError

# What a truncated, compressed or binary file raises while being read. EOFError matters most:
# click turns an uncaught EOFError into a silent "Abort" (exit 1, no message).
READ_ERRORS = (OSError, EOFError, zlib.error, UnicodeDecodeError, MemoryError)
MAX_INT64 = 2**63


@contextmanager
def reading(path: Path) -> Iterator[None]:
    """Turn the errors of reading ``path`` (missing, truncated .gz, not UTF-8...) into `DataError`."""
    try:
        yield
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a file") from None
    except READ_ERRORS as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot be read, truncated or damaged? ({first})") from None


def read_json(path: Path) -> Any:
    """Parse a JSON file; a truncated or malformed file names its line and column."""
    try:
        with reading(path), path.open(encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from None
    except RecursionError:
        raise DataError(f"{path}: JSON nested too deeply") from None


def read_jsonl(path: Path, *, allow_empty: bool = False) -> list[dict[str, Any]]:
    """One JSON object per non-blank line; a bad line names its file and line number."""
    rows = []
    with reading(path), path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except (json.JSONDecodeError, RecursionError) as exc:
                msg = getattr(exc, "msg", "nested too deeply")
                raise DataError(f"{path}:{lineno}: invalid JSON line ({msg})") from None
            if not isinstance(value, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object")
            rows.append(value)
    if not rows and not allow_empty:
        raise DataError(f"{path}: empty file")
    return rows


def sequences_to_frame(seqs: dict[str, list[Any]], source: str) -> pd.DataFrame:
    """``{user: [item, ...]}`` in time order → rows whose ``time`` is the position in the list."""
    if not seqs:
        raise DataError(f"{source}: no interactions")
    users: list[object] = []
    items: list[object] = []
    times: list[int] = []
    for user, seq in seqs.items():
        if not isinstance(seq, list):
            raise DataError(f"{source}: user {user!r} maps to {type(seq).__name__}, not a list")
        users.extend([user] * len(seq))
        items.extend(seq)
        times.extend(range(len(seq)))
    return pd.DataFrame({"user_id": users, "item_id": items, "time": np.asarray(times)})


def read_pairs_tsv(path: Path) -> pd.DataFrame:
    """MicroLens ``user<TAB>item item ...`` lines in time order."""
    seqs: dict[str, list[str]] = {}
    with reading(path), path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            user, sep, rest = line.partition("\t")
            items = rest.split()
            if not sep or not items or not user.strip():
                raise DataError(f"{path}:{lineno}: expected 'user<TAB>item item ...'")
            if user in seqs:
                raise DataError(f"{path}:{lineno}: user {user!r} has a second line")
            seqs[user] = items
    return sequences_to_frame(seqs, str(path))


def is_atomic_header(path: Path) -> bool:
    """Whether the first line is a RecBole atomic header (every column ``name:type``)."""
    if path.suffix.lower() in (".gz", ".bz2", ".xz", ".zip", ".zst", ".parquet"):
        return False
    try:
        with path.open(encoding="utf-8") as fh:
            first = fh.readline(1 << 16).rstrip("\r\n")
    except (OSError, UnicodeDecodeError):
        return False  # the real reader reports it
    columns = first.split("\t")
    return bool(first) and all(
        c.rpartition(":")[0] and c.rpartition(":")[2] in ATOMIC_TYPES for c in columns
    )


ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")


def read_atomic(path: Path) -> pd.DataFrame:
    """RecBole atomic file (``.inter``, ``.item``, ``.user``): tab-separated, typed headers.

    The header names each column ``name:type`` (``token``, ``token_seq``, ``float``,
    ``float_seq``); the types are stripped from the names. Every cell is read as text (an id
    ``NA`` stays the id ``"NA"``); ``float`` columns are then parsed as numbers.
    """
    try:
        with reading(path):
            frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed ({str(exc).splitlines()[0]})") from None
    names = [str(c).rpartition(":")[0] or str(c) for c in frame.columns]
    kinds = [str(c).rpartition(":")[2] if ":" in str(c) else "token" for c in frame.columns]
    frame.columns = names
    for name, kind in zip(names, kinds, strict=True):
        if kind == "float":
            frame[name] = _numbers(frame[name], str(path), name)
    return frame


def _numbers(values: pd.Series, source: str, column: str) -> pd.Series:
    """A ``float`` column: numbers or empty cells (missing); anything else names its row."""
    text = values.astype(str).str.strip()
    numeric = pd.to_numeric(text.where(text != ""), errors="coerce")
    bad = numeric.isna() & (text != "")
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{source}: row {first + 2}: column {column!r} is not a number: {values.iloc[first]!r}"
        )
    return numeric


def read_table(path: Path, **kwargs: Any) -> pd.DataFrame:
    """CSV / TSV / Parquet by extension (``.gz`` too); errors name the file."""
    suffixes = "".join(path.suffixes).lower()
    try:
        with reading(path):
            if suffixes.endswith(".parquet"):
                return pd.read_parquet(path)
            sep = "\t" if any(s in suffixes for s in (".tsv", ".txt", ".inter")) else ","
            return pd.read_csv(path, sep=kwargs.pop("sep", sep), **kwargs)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file") from None
    except (pd.errors.ParserError, ValueError, TypeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: cannot be read ({first})") from None


def require_columns(frame: pd.DataFrame, columns: list[str] | tuple[str, ...], source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing column {missing[0]!r} (has: {', '.join(map(str, frame.columns))})"
        )


def to_int_time(values: pd.Series, source: str, column: str) -> np.ndarray:
    """Times as int64: numbers pass through (Unix seconds or any ordinal), date strings become
    Unix seconds.

    A column is numeric when any cell is a number; then every cell must be a finite number
    within int64 (an ``inf`` or ``1e30`` would wrap to INT64_MIN and scramble the order). Errors
    name the first bad row (the file's line, counting the header as line 1) and its value.
    """
    text = values.astype(str).str.strip()
    numeric = pd.to_numeric(values, errors="coerce") if len(values) else values
    if len(values) and numeric.notna().any():
        as_float = numeric.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(as_float) | (np.abs(as_float) >= MAX_INT64)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            value = as_float[first]
            why = (
                "is not a number"
                if np.isnan(value)
                else "is not finite"
                if np.isinf(value)
                else "is out of range"
            )
            raise DataError(
                f"{source}: row {first + 2}: column {column!r} {why} (int64 seconds): "
                f"{str(values.iloc[first])!r}"
            )
        if pd.api.types.is_integer_dtype(numeric.dtype):
            return numeric.to_numpy(dtype=np.int64)
        return as_float.astype(np.int64)
    parsed = pd.to_datetime(values, errors="coerce", utc=True, format="mixed")
    bad_t = (parsed.isna() | (text == "")).to_numpy()
    if bad_t.any():
        first = int(np.flatnonzero(bad_t)[0])
        raise DataError(
            f"{source}: row {first + 2}: column {column!r} is not a time: "
            f"{str(values.iloc[first])!r}"
        )
    return (parsed.astype("int64") // 1_000_000_000).to_numpy()
