"""Canonical bytes and SHA-256 digests of the values an action reads and writes.

The ledger stores digests, not values: an entry proves *what* was asked and answered without
holding it (the values may be kept beside it in the blob table). JSON-like values are digested as
canonical JSON (sorted keys, no spaces); arrays and frames by their bytes, so two equal inputs
always give the same digest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd


def canonical_json(value: Any) -> bytes:
    """Compact JSON with sorted keys, UTF-8; the bytes the ledger hashes."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types; arrays and frames become ``{"sha256": ..., "shape": ...}``."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else repr(value)
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, bytes):
        return {"bytes_sha256": sha256_hex(value), "len": len(value)}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [jsonable(v) for v in items]
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value)
        return {
            "ndarray_sha256": sha256_hex(data.tobytes()),
            "dtype": str(data.dtype),
            "shape": list(data.shape),
        }
    if isinstance(value, pd.DataFrame | pd.Series):
        hashed = pd.util.hash_pandas_object(value, index=True).to_numpy()
        columns = list(map(str, value.columns)) if isinstance(value, pd.DataFrame) else [value.name]
        return {
            "frame_sha256": sha256_hex(hashed.tobytes()),
            "shape": list(value.shape),
            "columns": columns,
        }
    if dataclasses.is_dataclass(value) and not isinstance(value, type):  # Generation, RawPrompt...
        return {"type": type(value).__name__, **jsonable(dataclasses.asdict(value))}
    if hasattr(value, "model_dump"):  # pydantic models, MCP results
        return jsonable(value.model_dump(mode="json"))
    # Anything else is named by type and repr: weaker, and marked as such.
    return {"repr_of": type(value).__qualname__, "repr": repr(value)}


def digest(value: Any) -> str:
    """``sha256:<hex>`` of the canonical JSON of `jsonable(value)`."""
    return "sha256:" + sha256_hex(canonical_json(jsonable(value)))
