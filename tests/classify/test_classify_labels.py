import numpy as np
import pytest

from recfuse.classify.labels import (
    BOOKLYN_FICTION,
    GOODREADS_EXCLUDED,
    GOODREADS_GENRES,
    author_groups,
    blurb_texts,
    booklyn_labels,
    goodreads_labels,
)
from recfuse.data import load_table
from recfuse.errors import ConfigError


def test_goodreads_level1_from_shelves_and_level2_content_only() -> None:
    table = load_table("goodreads-books")
    labels = goodreads_labels(table)
    assert int((labels.level1 == 1).sum()) == 2167
    assert int((labels.level1 == 0).sum()) == 875
    assert int((labels.level1 == -1).sum()) == 3268 - 2167 - 875
    assert not set(GOODREADS_GENRES) & set(GOODREADS_EXCLUDED)
    assert "Audiobook" not in labels.genres and "Adult" not in labels.genres
    # Level 2 agrees with the raw shelves row by row.
    j = labels.genres.index("Fantasy")
    raw = np.array(["Fantasy" in g for g in table["genres"]])
    assert np.array_equal(labels.level2[:, j].astype(bool), raw)
    assert labels.level2.sum(0).min() >= 90  # every kept shelf is frequent


def test_goodreads_genre_list_is_configurable_and_checked() -> None:
    table = load_table("goodreads-books").iloc[:50]
    labels = goodreads_labels(table, genres=("Fantasy", "History"))
    assert labels.genres == ("Fantasy", "History") and labels.level2.shape == (50, 2)
    with pytest.raises(ConfigError, match="Level 1"):
        goodreads_labels(table, genres=("Fiction", "Fantasy"))


def test_booklyn_level1_maps_categories() -> None:
    table = load_table("booklyn-books")
    labels = booklyn_labels(table)
    assert len(labels.genres) == 35 and labels.single_label
    assert (labels.level2.sum(1) == 1).all()
    assert int(labels.level1.sum()) == 20 * len(BOOKLYN_FICTION)
    fiction_rows = table["category"].isin(BOOKLYN_FICTION).to_numpy()
    assert np.array_equal(labels.level1.astype(bool), fiction_rows)
    groups = author_groups("booklyn-books", table)
    assert all(isinstance(g, list) for g in groups)


def test_blurb_falls_back_to_title_when_empty() -> None:
    table = load_table("goodreads-books")
    texts = blurb_texts(table)
    empty = table["description"].fillna("").str.strip() == ""
    assert empty.any()
    i = int(np.flatnonzero(empty.to_numpy())[0])
    assert texts[i] == str(table["title"].iloc[i]).strip()
