"""Loaders count exactly what the published files hold."""

from __future__ import annotations

import pytest

from recfuse.data import load_dataset, load_table


@pytest.mark.parametrize(
    ("name", "users", "items", "interactions"),
    [
        ("microlens-50k", 50_000, 19_220, 359_708),
        ("ml-100k", 943, 1_682, 100_000),
        ("amazon-scientific", 8_317, 4_344, 58_492),
        ("amazon-office", 4_905, 2_420, 53_258),
    ],
)
def test_interaction_counts(name: str, users: int, items: int, interactions: int) -> None:
    ds = load_dataset(name)
    assert (ds.n_users, ds.n_items, ds.n_interactions) == (users, items, interactions)
    inter = ds.interactions
    assert inter["user"].between(0, users - 1).all()
    assert inter["item"].between(0, items - 1).all()
    # sorted by user then time, so sequence order is the file's order
    assert (inter["user"].diff().fillna(0) >= 0).all()
    same_user = inter["user"].diff() == 0
    assert (inter["time"].diff()[same_user] >= 0).all()


def test_item_text_is_attached() -> None:
    ds = load_dataset("microlens-50k")
    texts = ds.item_texts()
    assert len(texts) == ds.n_items and all(isinstance(t, str) for t in texts)
    assert sum(bool(t.strip()) for t in texts) > 19_000
    sci = load_dataset("amazon-scientific")
    assert (
        "Relay/Capacitor" in sci.item_texts("{title}")[int((sci.items["item_id"] == "0").idxmax())]
    )


def test_ml100k_order_follows_timestamps() -> None:
    ds = load_dataset("ml-100k")
    assert ds.has_timestamps
    assert {"age", "gender", "occupation"} <= set(ds.users.columns)


@pytest.mark.parametrize(
    ("name", "rows", "column"),
    [
        ("goodreads-books", 3_268, "genres"),
        ("booklyn-books", 700, "reviews"),
        ("chembl-assays", 85_563, "canonical_smiles"),
        ("agronomy", 3_443, "yield"),
    ],
)
def test_tables(name: str, rows: int, column: str) -> None:
    table = load_table(name)
    assert len(table) == rows
    assert column in table.columns


def test_goodreads_genres_are_lists_and_fiction_counts() -> None:
    table = load_table("goodreads-books")
    fiction = table["genres"].apply(lambda g: "Fiction" in g).sum()
    nonfiction = table["genres"].apply(lambda g: "Nonfiction" in g).sum()
    assert (fiction, nonfiction) == (2_167, 875)
