import numpy as np
import pytest

from recfuse.classify.labels import author_groups, make_labels
from recfuse.classify.splits import split_parts
from recfuse.data import load_table
from recfuse.errors import ConfigError


def _authors_by_part(groups: list[object], parts: np.ndarray) -> dict[int, set[str]]:
    out: dict[int, set[str]] = {0: set(), 1: set(), 2: set()}
    for cell, part in zip(groups, parts, strict=True):
        if part >= 0:
            out[int(part)].update(cell if isinstance(cell, list) else [cell])
    return out


@pytest.mark.parametrize("dataset", ["goodreads-books", "booklyn-books"])
@pytest.mark.parametrize("seed", [0, 3])
def test_author_split_shares_no_author(dataset: str, seed: int) -> None:
    table = load_table(dataset)
    groups = author_groups(dataset, table)
    labels = make_labels(dataset, table)
    parts = split_parts("author", groups, seed, labels.labeled)
    by_part = _authors_by_part(groups, parts)
    assert not by_part[0] & by_part[1]
    assert not by_part[0] & by_part[2]
    assert not by_part[1] & by_part[2]
    assert (parts[~labels.labeled] == -1).all()
    shares = np.bincount(parts[parts >= 0], minlength=3) / labels.labeled.sum()
    assert np.allclose(shares, [0.7, 0.1, 0.2], atol=0.05)


def test_coauthors_join_their_books() -> None:
    # A-B co-wrote book 1, B-C book 2, C alone book 3: all of A, B, C's books move together.
    groups: list[object] = [["A"], ["A", "B"], ["B", "C"], ["C"]] + [
        [f"solo{i}"] for i in range(36)
    ]
    for seed in range(5):
        parts = split_parts("author", groups, seed)
        assert len(set(parts[:4].tolist())) == 1


def test_booklyn_has_real_coauthored_books_that_stay_together() -> None:
    table = load_table("booklyn-books")
    groups = author_groups("booklyn-books", table)
    assert any(len(g) > 1 for g in groups)  # the data really has co-authors
    parts = split_parts("author", groups, 1)
    part_of_author: dict[str, int] = {}
    for cell, part in zip(groups, parts, strict=True):
        for a in cell:
            assert part_of_author.setdefault(a, int(part)) == part


def test_random_split_and_unknown_kind() -> None:
    parts = split_parts("random", ["same author"] * 100, 0)
    assert len(set(parts.tolist())) == 3  # one author, but random ignores authors
    with pytest.raises(ConfigError):
        split_parts("temporal", ["a"], 0)
