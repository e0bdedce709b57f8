"""File readers that turn each published format into raw (user_id, item_id, time) rows.

Every reader reports problems as `DataError` naming the file and, where it can, the line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recfuse.errors import DataError


def read_json(path: Path) -> Any:
    """Parse a JSON file; a truncated or malformed file names its line and column."""
    try:
        with path.open(encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON ({exc.msg})") from None
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None


def read_jsonl(path: Path, *, allow_empty: bool = False) -> list[dict[str, Any]]:
    """One JSON object per non-blank line; a bad line names its file and line number."""
    rows = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: invalid JSON line ({exc.msg})") from None
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
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.rstrip("\n")
            if not line:
                continue
            user, sep, rest = line.partition("\t")
            items = rest.split()
            if not sep or not items:
                raise DataError(f"{path}:{lineno}: expected 'user<TAB>item item ...'")
            seqs[user] = items
    return sequences_to_frame(seqs, str(path))


def read_atomic(path: Path) -> pd.DataFrame:
    """RecBole atomic file: tab-separated with typed headers (``user_id:token``)."""
    try:
        frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file") from None
    except pd.errors.ParserError as exc:
        raise DataError(f"{path}: malformed ({exc})") from None
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame


def read_table(path: Path, **kwargs: Any) -> pd.DataFrame:
    """CSV / TSV / Parquet by extension; errors name the file."""
    suffixes = "".join(path.suffixes).lower()
    try:
        if suffixes.endswith(".parquet"):
            return pd.read_parquet(path)
        sep = "\t" if any(s in suffixes for s in (".tsv", ".txt", ".inter")) else ","
        return pd.read_csv(path, sep=kwargs.pop("sep", sep), **kwargs)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot be read ({str(exc).splitlines()[0]})") from None


def require_columns(frame: pd.DataFrame, columns: list[str] | tuple[str, ...], source: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(
            f"{source}: missing column {missing[0]!r} (has: {', '.join(map(str, frame.columns))})"
        )


def to_int_time(values: pd.Series, source: str, column: str) -> np.ndarray:
    """Numbers pass through; date strings become Unix seconds."""
    numeric = pd.to_numeric(values, errors="coerce")
    if numeric.notna().all():
        return numeric.to_numpy(dtype=np.float64).astype(np.int64)
    parsed = pd.to_datetime(values, errors="coerce", utc=True)
    bad = parsed.isna()
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"{source}: row {first + 2}: column {column!r} is not a time: {values.iloc[first]!r}"
        )
    return (parsed.astype("int64") // 1_000_000_000).to_numpy()
