"""Generated user files and configs: each is loaded correctly or refused with a `RecfuseError`.

The user-file fuzzer also checks what "correctly" means: no row vanishes (every row is kept, or
counted as a dropped duplicate), ids stay the strings that were written, time order is kept.
"""

from __future__ import annotations

import gzip
import math
from collections import Counter
from pathlib import Path

import numpy as np
import yaml
from fuzz_support import examples, record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recfuse.data import load_interactions_file
from recfuse.errors import ConfigError, DataError
from recfuse.runs import load_config

SETTINGS = {"deadline": None, "database": None, "suppress_health_check": list(HealthCheck)}

ids = st.one_of(
    st.sampled_from(["u1", "u2", "NA", "null", "nan", "None", "", " ", "0", "007", "1e3", "#x"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=6),
)
plain_ids = st.sampled_from(["u1", "u2", "u3", "i1", "i2", "NA", "null"])
ids = st.one_of(plain_ids, plain_ids, plain_ids, ids)  # mostly ids that load, some odd ones
times = st.one_of(
    st.integers(0, 2**40).map(str),
    st.integers(0, 2**40).map(str),
    st.integers(0, 2**40).map(str),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "inf", "-inf", "nan", "NA", "2020-01-01", "2020-13-45", "soon", "1e30"]),
)
rows = st.lists(st.tuples(ids, ids, times), min_size=0, max_size=12)


def _write(path: Path, header: str, body: list[tuple[str, str, str]], sep: str) -> None:
    def cell(text: str) -> str:  # CSV quoting, so the file says exactly these values
        return '"' + text.replace('"', '""') + '"'

    lines = [header] + [sep.join(cell(v) for v in row) for row in body]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _user_file_outcome(body: list[tuple[str, str, str]], sep: str, folder: Path) -> str:
    path = folder / ("i.tsv" if sep == "\t" else "i.csv")
    _write(path, sep.join(["user_id", "item_id", "timestamp"]), body, sep)
    try:
        data = load_interactions_file(path, duplicates="first")
    except DataError as exc:
        assert str(exc).startswith(str(path)), exc  # the message names the file
        return "refused with a DataError naming the file"
    kept = data.n_interactions + data.notes.get("duplicates_dropped", 0)
    assert kept == len(body), "rows vanished"
    users = {str(u) for u, _, _ in body}
    assert set(data.users["user_id"]) == users, "ids changed"
    inter = data.interactions
    assert not inter.duplicated(["user", "item"]).any()
    numbers = [_number(t) for _, _, t in body]
    if kept == data.n_interactions and all(n is not None for n in numbers):
        # times are the file's numbers (to the second), so their order is the file's order
        got = np.sort(inter["time"].to_numpy(dtype=np.float64))
        assert np.allclose(got, np.sort(np.trunc(numbers)), rtol=1e-12, atol=1), "times changed"
    return "loaded, every row accounted for"


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@settings(max_examples=examples(80, 2_000), **SETTINGS)
@given(body=rows, sep=st.sampled_from([",", "\t"]))
def test_user_file_reader(tmp_path_factory, body: list[tuple[str, str, str]], sep: str) -> None:
    folder = tmp_path_factory.mktemp("uf")
    _TALLY["user files"][_user_file_outcome(body, sep, folder)] += 1


@settings(max_examples=examples(40, 500), **SETTINGS)
@given(data=st.binary(max_size=400), cut=st.integers(0, 400), gz=st.booleans())
def test_user_file_reader_on_bytes(tmp_path_factory, data: bytes, cut: int, gz: bool) -> None:
    """Arbitrary bytes, or a real gzip file cut short: never anything but a DataError."""
    folder = tmp_path_factory.mktemp("ub")
    path = folder / ("i.csv.gz" if gz else "i.csv")
    if gz:
        whole = gzip.compress(b"user_id,item_id,timestamp\n" + b"u,a,1\nu,b,2\nv,a,3\n" * 30)
        data = whole[: cut % len(whole)]
    path.write_bytes(data)
    try:
        load_interactions_file(path)
        outcome = "loaded"
    except DataError:
        outcome = "refused with a DataError"
    _TALLY["user file bytes"][outcome] += 1


KEYS = ["name", "seed", "data", "data.name", "data.file", "data.file.path", "data.min_rating",
        "split", "split.protocol", "split.valid_frac", "model", "model.name", "model.params",
        "train", "train.epochs", "eval", "eval.ks", "output", "bogus", "data.k_core"]  # fmt: skip
values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


BASE = {"data": {"name": "ml-100k"}, "model": {"name": "pop"}}


def _with(tree: dict, changes: dict) -> dict:
    """``tree`` with dotted keys set (a non-mapping in the way is replaced)."""
    out = yaml.safe_load(yaml.safe_dump(tree))
    for dotted, value in changes.items():
        node = out
        *parents, last = dotted.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[last] = value
    return out


@settings(max_examples=examples(80, 2_000), **SETTINGS)
@given(
    tree=st.dictionaries(st.sampled_from(KEYS), values, max_size=3).map(lambda c: _with(BASE, c)),
    sets=st.lists(st.tuples(st.sampled_from(KEYS), st.text(max_size=10)), max_size=3),
    raw=st.one_of(st.none(), st.none(), st.none(), st.text(max_size=60), st.binary(max_size=60)),
)
def test_config_loader(tmp_path_factory, tree: dict, sets: list, raw: object) -> None:
    folder = tmp_path_factory.mktemp("cfg")
    path = folder / "c.yaml"
    if raw is None:
        path.write_text(yaml.safe_dump(tree), encoding="utf-8")
    elif isinstance(raw, bytes):
        path.write_bytes(raw)
    else:
        path.write_text(raw, encoding="utf-8")
    try:
        load_config(path, [f"{k}={v}" for k, v in sets])
        outcome = "accepted"
    except ConfigError:
        outcome = "refused with a ConfigError"
    _TALLY["configs"][outcome] += 1


_TALLY: dict[str, Counter[str]] = {
    "user files": Counter(), "user file bytes": Counter(), "configs": Counter()
}  # fmt: skip


def teardown_module() -> None:
    for area, tally in _TALLY.items():
        if tally:
            record(area, tally)
