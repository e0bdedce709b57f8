"""The datasets recfuse knows by name, and `load_dataset` / `load_table` to read them.

Interaction datasets become a `Dataset`; table datasets (books, assays, field trials) become a
pandas DataFrame for the classification and audit parts.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recfuse.data.dataset import LINE, Dataset, Duplicates, build_dataset, filter_min_rating
from recfuse.data.locate import RemoteFile, locate
from recfuse.data.readers import (
    is_atomic_header,
    read_atomic,
    read_json,
    read_jsonl,
    read_pairs_tsv,
    read_table,
    require_columns,
    sequences_to_frame,
    to_int_time,
)
from recfuse.errors import DataError


def _gh(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


_MUSER = ("muhhpu/MUSER", "9fd8eed09c4f88ba49856d4cc2f316a52313cc2b")
_SCI = ("Nishikata97/CollisionGenRec", "505d5be3166f7c38ae67957daf8a3b7ec7092577")
_APAO = ("yuyq18/APAO", "aa08fcfab4ad306a536a1fde648042972a292bbe")
_RECBOLE = ("RUCAIBox/RecBole", "7b02be5ec80a88310f2d04a27a82adfcbb5dc211")
_GOODREADS = ("jytingy/book_recommendation", "95cf915090f6b742d1ee564b0115039a928581df")
_AGRIDAT = ("kwstat/agridat", "5919e3fb126c9c6da48946d0e8648d410dbddc53")


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: its files, how to read them, and a one-line description."""

    name: str
    kind: str  # "interactions" or "table"
    description: str
    files: tuple[RemoteFile, ...] | tuple[str, ...]
    reader: Callable[[Path], Dataset | pd.DataFrame]


# ---------------------------------------------------------------- interaction datasets


def _read_microlens(folder: Path) -> Dataset:
    raw = read_pairs_tsv(folder / "MicroLens-50k_pairs.tsv")
    titles = read_table(folder / "MicroLens-50k_titles.csv", dtype={"item": str})
    require_columns(titles, ["item", "title"], str(folder / "MicroLens-50k_titles.csv"))
    items = titles.set_index("item")[["title"]]
    return build_dataset(
        "microlens-50k",
        raw,
        items,
        has_timestamps=False,
        text_fields=("title",),
        source=str(folder / "MicroLens-50k_pairs.tsv"),
    )


def _amazon_reader(name: str, stem: str) -> Callable[[Path], Dataset]:
    def read(folder: Path) -> Dataset:
        inter_path = folder / f"{stem}.inter.json"
        raw = sequences_to_frame(read_json(inter_path), str(inter_path))
        raw["item_id"] = raw["item_id"].astype(str)
        meta = read_json(folder / f"{stem}.item.json")
        items = pd.DataFrame.from_dict(meta, orient="index")
        for col in ("title", "description", "brand", "categories"):
            if col not in items.columns:
                items[col] = ""
        return build_dataset(
            name,
            raw,
            items[["title", "description", "brand", "categories"]],
            has_timestamps=False,
            text_fields=("title", "brand", "categories", "description"),
            source=str(inter_path),
        )

    return read


def _read_ml100k(folder: Path) -> Dataset:
    path = folder / "ml-100k.inter"
    inter = read_atomic(path)
    require_columns(inter, ["user_id", "item_id", "timestamp"], str(path))
    raw = pd.DataFrame(
        {
            "user_id": inter["user_id"],
            "item_id": inter["item_id"],
            "time": to_int_time(inter["timestamp"], str(path), "timestamp"),
            "rating": pd.to_numeric(inter.get("rating"), errors="coerce"),
        }
    )
    items = read_atomic(folder / "ml-100k.item").set_index("item_id")
    items = items.rename(
        columns={"movie_title": "title", "class": "genres", "release_year": "year"}
    )
    users = read_atomic(folder / "ml-100k.user").set_index("user_id")
    return build_dataset(
        "ml-100k",
        raw,
        items,
        users,
        has_timestamps=True,
        text_fields=("title", "year", "genres"),
        source=str(path),
    )


# ---------------------------------------------------------------- table datasets


def _read_goodreads(folder: Path) -> pd.DataFrame:
    path = folder / "goodreads_data_3268.csv"
    frame = read_table(path)
    require_columns(frame, ["Book", "Author", "Description", "Genres"], str(path))
    frame = frame.rename(columns={frame.columns[0]: "book_id"})

    def parse(cell: object, row: int) -> list[str]:
        # The column is a Python list literal; literal_eval parses data and never runs code.
        try:
            value = ast.literal_eval(str(cell))
        except (ValueError, SyntaxError):
            raise DataError(
                f"{path}: row {row + 2}: Genres is not a list literal: {cell!r}"
            ) from None
        if not isinstance(value, list):
            raise DataError(f"{path}: row {row + 2}: Genres is not a list")
        return [str(v) for v in value]

    frame["genres"] = [parse(c, i) for i, c in enumerate(frame["Genres"])]
    frame = frame.rename(
        columns={"Book": "title", "Author": "author", "Description": "description"}
    )
    frame["description"] = frame["description"].fillna("")
    return frame.drop(columns=["Genres"])


def _read_booklyn(folder: Path) -> pd.DataFrame:
    books = pd.DataFrame(read_jsonl(folder / "books.jsonl"))
    require_columns(
        books, ["book_id", "title", "authors", "description", "categories"], "books.jsonl"
    )
    reviews = pd.DataFrame(read_jsonl(folder / "reviews.jsonl"))
    require_columns(reviews, ["book_id", "text"], "reviews.jsonl")
    grouped = reviews.groupby("book_id")
    books["reviews"] = (
        books["book_id"]
        .map(grouped["text"].apply(list))
        .apply(lambda v: v if isinstance(v, list) else [])
    )
    books["review_ratings"] = (
        books["book_id"]
        .map(grouped["rating"].apply(list))
        .apply(lambda v: v if isinstance(v, list) else [])
    )
    books["category"] = books["categories"].apply(
        lambda c: c[0] if isinstance(c, list) and c else c
    )
    return books


def _read_chembl(folder: Path) -> pd.DataFrame:
    frames = []
    for path in sorted(folder.glob("target_*.csv.gz")):
        target, _, rest = path.name.removeprefix("target_").partition("-")
        frame = read_table(path, sep=",")
        require_columns(
            frame,
            ["assay_chembl_id", "compound_chembl_id", "canonical_smiles", "pchembl_value"],
            str(path),
        )
        frame["target"] = target
        frame["dataset"] = path.name.removeprefix("target_").removesuffix(".csv.gz")
        frame["measure"] = rest.split(".")[1]
        frames.append(frame)
    if not frames:
        raise DataError(f"{folder}: no target_*.csv.gz files")
    return pd.concat(frames, ignore_index=True)


def _read_agronomy(folder: Path) -> pd.DataFrame:
    frame = read_table(folder / "lasrosas.corn.txt", na_values=["NA"])
    require_columns(frame, ["year", "yield", "nitro", "topo", "bv"], "lasrosas.corn.txt")
    return frame


CATALOG: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec(
            "microlens-50k",
            "interactions",
            "MicroLens-50k micro-videos: 50,000 users, 19,220 items, video titles; order only",
            (
                RemoteFile(
                    "MicroLens-50k_pairs.tsv",
                    _gh(*_MUSER, "data/microlens/MicroLens-50k_pairs.tsv"),
                    "46be22f478aa891b9c2a4b357c1df2ac2478793a99d58d07336e6277b6bf426d",
                ),
                RemoteFile(
                    "MicroLens-50k_titles.csv",
                    _gh(*_MUSER, "data/microlens/MicroLens-50k_titles.csv"),
                    "244aad5380cbbe0fb43458cfcda5ebe820f534384602f80a64dbbcd07dd30e49",
                ),
            ),
            _read_microlens,
        ),
        DatasetSpec(
            "amazon-scientific",
            "interactions",
            "Amazon 2018 Industrial & Scientific: 8,317 users, 4,344 items; title, description, brand",
            (
                RemoteFile(
                    "Scientific.inter.json",
                    _gh(*_SCI, "data/Scientific/Scientific.inter.json"),
                    "32c6c01876ebecebdfabd2dbd358594be36655e9e7b168772a7a3aa3624ee1b4",
                ),
                RemoteFile(
                    "Scientific.item.json",
                    _gh(*_SCI, "data/Scientific/Scientific.item.json"),
                    "ad24200106868dac2b544d812305d61a11bf07fed78b2f7cdca41d66f3418e71",
                ),
            ),
            _amazon_reader("amazon-scientific", "Scientific"),
        ),
        DatasetSpec(
            "amazon-office",
            "interactions",
            "Amazon 2014 Office Products 5-core: 4,905 users, 2,420 items; title, description, brand",
            (
                RemoteFile(
                    "Office.inter.json",
                    _gh(*_APAO, "data/Office/Office.inter.json"),
                    "10f983c76de3d2443ae68bf50bc6231962ab493f4d08c7e716e2f183ae70d698",
                ),
                RemoteFile(
                    "Office.item.json",
                    _gh(*_APAO, "data/Office/Office.item.json"),
                    "df013666416847d0f3468f08d9f68877faf251f71b51247050e98da5b705b5c7",
                ),
            ),
            _amazon_reader("amazon-office", "Office"),
        ),
        DatasetSpec(
            "ml-100k",
            "interactions",
            "MovieLens 100K: 943 users, 1,682 movies, 100,000 timestamped ratings; titles, genres",
            (
                RemoteFile(
                    "ml-100k.inter",
                    _gh(*_RECBOLE, "dataset/ml-100k/ml-100k.inter"),
                    "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
                ),
                RemoteFile(
                    "ml-100k.item",
                    _gh(*_RECBOLE, "dataset/ml-100k/ml-100k.item"),
                    "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
                ),
                RemoteFile(
                    "ml-100k.user",
                    _gh(*_RECBOLE, "dataset/ml-100k/ml-100k.user"),
                    "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
                ),
            ),
            _read_ml100k,
        ),
        DatasetSpec(
            "goodreads-books",
            "table",
            "3,268 Goodreads books: blurb, author, up to 7 genre shelves",
            (
                RemoteFile(
                    "goodreads_data_3268.csv",
                    _gh(*_GOODREADS, "goodreads_data.csv"),
                    "187744c8025fbe0c779c47a53740ea925ebdf79c038f15ff30d7dd7f9bc3815c",
                ),
            ),
            _read_goodreads,
        ),
        DatasetSpec(
            "booklyn-books",
            "table",
            "700 books with blurbs, 35 categories and 1,216 Amazon reviews (no public download)",
            ("books.jsonl", "reviews.jsonl"),
            _read_booklyn,
        ),
        DatasetSpec(
            "chembl-assays",
            "table",
            "ChEMBL 32 IC50/Ki measurements: SMILES, assay (source document), target, pChEMBL",
            ("IC50_datasets.yaml",),
            _read_chembl,
        ),
        DatasetSpec(
            "agronomy",
            "table",
            "Las Rosas corn yield-monitor data: yield, nitrogen, topography, soil brightness",
            (
                RemoteFile(
                    "lasrosas.corn.txt",
                    _gh(*_AGRIDAT, "data/lasrosas.corn.txt"),
                    "10519d7ca0bbf3af74a1979e93a39f1d64a7e4a2aae5f988981405808c40c18d",
                ),
            ),
            _read_agronomy,
        ),
    ]
}


def get_spec(name: str) -> DatasetSpec:
    if name not in CATALOG:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(CATALOG)}")
    return CATALOG[name]


def dataset_folder(name: str, data_dir: str | Path | None = None, *, rehash: bool = False) -> Path:
    """The folder holding dataset ``name`` (downloaded if needed; SHA-256s checked, see `locate`)."""
    spec = get_spec(name)
    return locate(name, spec.files, data_dir, rehash=rehash)


def load_dataset(name: str, data_dir: str | Path | None = None) -> Dataset:
    """Load a named interaction dataset (see `CATALOG`) with contiguous ids."""
    spec = get_spec(name)
    if spec.kind != "interactions":
        raise DataError(f"dataset {name!r} is a table, not interactions; use load_table")
    result = spec.reader(dataset_folder(name, data_dir))
    assert isinstance(result, Dataset)
    return result


def load_table(name: str, data_dir: str | Path | None = None) -> pd.DataFrame:
    """Load a named table dataset (books, assays, field trials) as a DataFrame."""
    spec = get_spec(name)
    if spec.kind != "table":
        raise DataError(f"dataset {name!r} holds interactions; use load_dataset")
    result = spec.reader(dataset_folder(name, data_dir))
    assert isinstance(result, pd.DataFrame)
    return result


ATOMIC_SUFFIXES = (".inter", ".item", ".user")


def read_user_table(path: Path, id_cols: tuple[str, ...]) -> pd.DataFrame:
    """A user's CSV / TSV / Parquet / RecBole atomic file with ``id_cols`` read as text (as
    they are written, so an error can quote them).

    Ids are never parsed as missing values: ``NA``, ``null`` or ``nan`` are ids like any other
    (pandas would turn them into NaN and the rows would vanish). An empty id is an error later.
    """
    if path.suffix.lower() in ATOMIC_SUFFIXES or (path.is_file() and is_atomic_header(path)):
        return read_atomic(path)
    frame = read_table(path, dtype={c: str for c in id_cols}, keep_default_na=False)
    for col in id_cols:  # Parquet keeps its own types: ids become text all the same
        if col in frame.columns and frame[col].dtype != object:
            frame[col] = frame[col].astype("string").astype(object)
    return frame


def load_interactions_file(
    path: str | Path,
    *,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str | None = "timestamp",
    rating_col: str | None = "rating",
    min_rating: float | None = None,
    duplicates: Duplicates = "error",
    items_path: str | Path | None = None,
    item_id_col: str | None = None,
    text_fields: tuple[str, ...] = (),
    name: str | None = None,
) -> Dataset:
    """A user's own data: an interactions file (CSV, TSV, Parquet or a RecBole atomic ``.inter``
    file with ``name:type`` headers) and an optional item table (same formats, e.g. ``.item``).

    Without ``time_col`` the file order within each user is taken as time order. The
    ``rating_col`` column, when the file has it, is kept as ``rating``; ``min_rating`` keeps only
    rows rated at least that (explicit feedback turned into positives). ``duplicates``: see
    `build_dataset`.
    """
    path = Path(path)
    frame = read_user_table(path, (user_col, item_col, *([time_col] if time_col else [])))
    if frame.empty:
        raise DataError(f"{path}: no interactions")
    needed = [user_col, item_col] + ([time_col] if time_col else [])
    require_columns(frame, needed, str(path))
    if time_col:
        time = to_int_time(frame[time_col], str(path), time_col)
    else:
        time = frame.groupby(user_col, sort=False).cumcount().to_numpy()
    raw = pd.DataFrame(
        {
            "user_id": frame[user_col].to_numpy(),
            "item_id": frame[item_col].to_numpy(),
            "time": time,
            LINE: np.arange(len(frame)) + 2,  # line 1 is the header
        }
    )
    if rating_col and rating_col in frame.columns:
        raw["rating"] = _ratings(frame[rating_col], str(path), rating_col)
    elif min_rating is not None:
        raise DataError(f"{path}: data.min_rating needs a rating column {rating_col!r}")
    items = None
    if items_path is not None:
        key = item_id_col or item_col
        table = read_user_table(Path(items_path), (key,))
        require_columns(table, [key, *text_fields], str(items_path))
        items = table.drop_duplicates(key).set_index(key)
    dataset = build_dataset(
        name or path.stem,
        raw,
        items,
        has_timestamps=time_col is not None,
        text_fields=text_fields,
        source=str(path),
        duplicates=duplicates,
    )
    return dataset if min_rating is None else filter_min_rating(dataset, min_rating)


def _ratings(values: pd.Series, source: str, column: str) -> np.ndarray:
    """Ratings as float64: every row a finite number, else an error naming the row."""
    numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(numeric)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{source}: row {first + 2}: column {column!r} is not a rating: {values.iloc[first]!r}"
        )
    return numeric
