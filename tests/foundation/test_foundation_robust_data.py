"""Data files that used to load wrongly or die without a message (issue 14 items 4, 6-8, 11;
issue 12 item 6: RecBole atomic files and explicit feedback)."""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recfuse.atomic import write_text
from recfuse.data import load_dataset, load_interactions_file
from recfuse.data.catalog import load_table
from recfuse.data.locate import CHECKOUT_ROOT, checksum_cache_path, locate
from recfuse.errors import DataError
from recfuse.evaluation import Evaluator
from recfuse.models.classic import Pop
from recfuse.split import make_split

SHARED = CHECKOUT_ROOT.parent / "shared" / "data"


def _csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


# ---------------------------------------------------------------- duplicates (item 4)


def test_duplicate_pairs_are_refused_naming_both_lines(tmp_path: Path) -> None:
    path = _csv(tmp_path / "i.csv", "user_id,item_id,timestamp\nu,a,1\nu,b,2\nv,a,1\nu,b,3\n")
    with pytest.raises(DataError, match=r"line 5: user 'u' already has item 'b' \(line 3\)"):
        load_interactions_file(path)


@pytest.mark.parametrize(("rule", "kept_time"), [("first", 2), ("last", 3)])
def test_duplicates_dropped_by_rule_and_counted(tmp_path: Path, rule: str, kept_time: int) -> None:
    path = _csv(tmp_path / "i.csv", "user_id,item_id,timestamp\nu,a,1\nu,b,2\nv,a,1\nu,b,3\n")
    data = load_interactions_file(path, duplicates=rule)  # type: ignore[arg-type]
    assert data.n_interactions == 3 and data.stats()["duplicates_dropped"] == 1
    b = int(data.items.index[data.items["item_id"] == "b"][0])
    assert data.interactions.loc[data.interactions["item"] == b, "time"].tolist() == [kept_time]


def test_a_target_that_is_also_history_is_not_masked(tmp_path: Path) -> None:
    """Before: the duplicate of the target was history, so the target was masked to -inf and
    NDCG/Recall were 0 for that user however good the model."""
    rows = ["user_id,item_id,timestamp"]
    rows += [f"u{u},i{(u + t) % 7},{t}" for u in range(30) for t in range(5)]
    path = _csv(tmp_path / "i.csv", "\n".join(rows) + "\n")
    data = load_interactions_file(path)
    split = make_split(data, "leave_one_out")
    # put each user's test item into its training history too (a repeat consumption)
    repeat = split.test.assign(time=split.test["time"] - 100)
    split.train = pd.concat([split.train, repeat]).sort_values(["user", "time"], kind="stable")
    result = Evaluator(split, ks=(10,)).evaluate(Pop().fit(split), "test")
    assert result.metrics["Recall@10"] > 0.5  # 7 items: the target is always in the top 10


# ---------------------------------------------------------------- time values (item 6)


@pytest.mark.parametrize(
    ("value", "why"),
    [("inf", "not finite"), ("1e30", "out of range"), ("9223372036854775808", "out of range"),
     ("soon", "not a number"), ("", "not a number")],
)  # fmt: skip
def test_bad_timestamps_name_their_row_and_value(tmp_path: Path, value: str, why: str) -> None:
    path = _csv(
        tmp_path / "i.csv", f"user_id,item_id,timestamp\nu,a,100\nu,b,200\nv,a,{value}\nv,b,5\n"
    )
    with pytest.raises(DataError, match=rf"row 4: column 'timestamp' is {why}.*{value!r}"):
        load_interactions_file(path)


def test_bad_date_names_the_bad_value_not_row_2(tmp_path: Path) -> None:
    path = _csv(
        tmp_path / "i.csv",
        "user_id,item_id,timestamp\nu,a,2020-01-01\nu,b,2020-01-02 10:00\nv,a,not-a-date\n",
    )
    with pytest.raises(DataError, match=r"row 4: column 'timestamp' is not a time: 'not-a-date'"):
        load_interactions_file(path)


# ---------------------------------------------------------------- ids (item 11)


def test_na_like_ids_are_ids_and_empty_ids_are_refused(tmp_path: Path) -> None:
    path = _csv(tmp_path / "i.csv", "user_id,item_id,timestamp\nNA,a,1\nnull,b,2\nnan,NA,3\n")
    data = load_interactions_file(path)
    assert data.n_interactions == 3 and set(data.users["user_id"]) == {"NA", "null", "nan"}
    bad = _csv(tmp_path / "b.csv", "user_id,item_id,timestamp\nu,a,1\n,b,2\n")
    with pytest.raises(DataError, match=r"line 3: user_id is missing"):
        load_interactions_file(bad)
    frame = pd.DataFrame({"user_id": ["u", None], "item_id": ["a", "b"], "timestamp": [1, 2]})
    frame.to_parquet(tmp_path / "p.parquet")
    with pytest.raises(DataError, match=r"line 3: user_id is missing"):
        load_interactions_file(tmp_path / "p.parquet")


# ---------------------------------------------------------------- truncated files (item 7)


def test_truncated_gzip_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "chembl-assays"
    shutil.copytree(SHARED / "chembl-assays", folder)
    victim = sorted(folder.glob("target_*.csv.gz"))[0]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    with pytest.raises(DataError, match=rf"{victim.name}: cannot be read"):
        load_table("chembl-assays", data_dir=tmp_path)
    from recfuse.cli import main  # in-process: the same handler a shell would reach

    argv = ["recfuse", "data", "describe", "chembl-assays", "--data-dir", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and victim.name in err, err  # before: exit 1, no message
    assert len(err.strip().splitlines()) == 1


def test_not_gzip_at_all(tmp_path: Path) -> None:
    path = tmp_path / "x.csv.gz"
    path.write_bytes(b"not gzip data at all")
    with pytest.raises(DataError, match="x.csv.gz: cannot be read"):
        load_interactions_file(path)
    good = tmp_path / "ok.csv.gz"
    with gzip.open(good, "wt") as fh:
        fh.write("user_id,item_id,timestamp\nu,a,1\nu,b,2\n")
    assert load_interactions_file(good).n_interactions == 2


# ---------------------------------------------------------------- checksums (item 8)


def test_half_a_microlens_file_is_not_ready(tmp_path: Path) -> None:
    folder = tmp_path / "microlens-50k"
    folder.mkdir()
    for name in ("MicroLens-50k_pairs.tsv", "MicroLens-50k_titles.csv"):
        shutil.copy(SHARED / "microlens-50k" / name, folder)
    pairs = folder / "MicroLens-50k_pairs.tsv"
    lines = pairs.read_text().splitlines(keepends=True)
    pairs.write_text("".join(lines[: len(lines) // 2]))  # whole lines: every reader accepts it
    with pytest.raises(DataError, match=r"MicroLens-50k_pairs.tsv: SHA-256 \w+ does not match"):
        load_dataset("microlens-50k", data_dir=tmp_path)


def test_checksum_cache_is_keyed_by_size_and_mtime(tmp_path: Path) -> None:
    folder = tmp_path / "agronomy"
    folder.mkdir()
    shutil.copy(SHARED / "agronomy" / "lasrosas.corn.txt", folder)
    from recfuse.data.catalog import CATALOG

    files = CATALOG["agronomy"].files
    assert locate("agronomy", files, tmp_path) == folder
    key = str((folder / "lasrosas.corn.txt").resolve())
    assert key in checksum_cache_path().read_text()
    # same size, same mtime, different bytes: the cache trusts it (the documented trade-off) ...
    target = folder / "lasrosas.corn.txt"
    st = target.stat()
    raw = bytearray(target.read_bytes())
    raw[-2] ^= 1
    target.write_bytes(bytes(raw))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert locate("agronomy", files, tmp_path) == folder
    # ... but `data prepare` always rehashes, and a new mtime is checked again
    with pytest.raises(DataError, match="does not match"):
        locate("agronomy", files, tmp_path, rehash=True)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    with pytest.raises(DataError, match="does not match"):
        locate("agronomy", files, tmp_path)


def test_explicit_folder_missing_a_file_is_an_error(tmp_path: Path) -> None:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    shutil.copy(SHARED / "ml-100k" / "ml-100k.inter", folder)
    with pytest.raises(DataError, match=r"lacks ml-100k.item, ml-100k.user"):
        load_dataset("ml-100k", data_dir=tmp_path)


def test_shared_data_matches_the_catalog() -> None:
    from recfuse.data.catalog import CATALOG
    from recfuse.data.locate import check_checksums

    for spec in CATALOG.values():
        check_checksums(SHARED / spec.name, spec.files)  # raises on any mismatch


# ---------------------------------------------------------------- atomic writes keep modes


def test_atomic_write_respects_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_text(tmp_path / "a.txt", "x")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
        os.chmod(tmp_path / "a.txt", 0o640)
        write_text(tmp_path / "a.txt", "y")  # an existing file keeps its mode
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
    finally:
        os.umask(old)


# ---------------------------------------------------------------- issue 12: your own data


def test_recbole_atomic_inter_with_min_rating_exact_counts(tmp_path: Path) -> None:
    inter = SHARED / "ml-100k" / "ml-100k.inter"
    everything = load_interactions_file(inter, items_path=SHARED / "ml-100k" / "ml-100k.item")
    assert (everything.n_users, everything.n_items, everything.n_interactions) == (
        943,
        1682,
        100_000,
    )
    assert everything.interactions["rating"].between(1, 5).all()
    liked = load_interactions_file(inter, min_rating=4)
    assert liked.n_interactions == 55_375 and liked.stats()["below_min_rating"] == 44_625
    assert liked.n_users == 942 and (liked.interactions["rating"] >= 4).all()
    # a small hand-made atomic file: typed header, NA as an id, a float column parsed
    small = tmp_path / "mine.inter"
    small.write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "NA\tx\t5\t10\nNA\ty\t2\t11\nb\tx\t4.5\t12\n"
    )
    data = load_interactions_file(small, min_rating=4)
    assert data.n_interactions == 2 and sorted(data.users["user_id"]) == ["NA", "b"]
    assert np.allclose(sorted(data.interactions["rating"]), [4.5, 5.0])


def test_min_rating_from_a_config(tmp_path: Path) -> None:
    from recfuse.runs import load_config
    from recfuse.runs.experiment import build_dataset

    config = load_config(overrides=["data.name=ml-100k", "data.min_rating=4", "model.name=pop"])
    assert build_dataset(config).n_interactions == 55_375
    path = _csv(tmp_path / "r.csv", "user_id,item_id,timestamp,stars\nu,a,1,5\nu,b,2,1\n")
    config = load_config(
        overrides=[f"data.file.path={path}", "data.file.rating_col=stars", "data.min_rating=3",
                   "model.name=pop"]
    )  # fmt: skip
    assert build_dataset(config).n_interactions == 1


def test_abort_always_says_why(capsys: pytest.CaptureFixture[str]) -> None:
    """click raises Abort for Ctrl-C and for any stray EOFError; it used to exit 1 silently."""
    import click

    from recfuse.cli import _aborted

    for cause, code, words in ((KeyboardInterrupt(), 130, "interrupted"),
                               (EOFError("Compressed file ended"), 1, "EOFError"),
                               (None, 1, "aborted")):  # fmt: skip
        try:
            raise click.exceptions.Abort() from cause
        except click.exceptions.Abort as exc:
            assert _aborted(exc) == code
        assert words in capsys.readouterr().err
