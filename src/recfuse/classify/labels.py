"""Level 1 (fiction / non-fiction) and Level 2 (fine genre) labels for the two book tables.

goodreads-books: Level 1 comes from the ``Fiction`` / ``Nonfiction`` shelves (never both; books with
neither are unlabeled and only predicted, never trained or scored). Level 2 is a fixed, documented
list of frequent *content* shelves (`GOODREADS_GENRES`): every shelf on at least 100 of the 3,268
books, minus the shelves that describe the format (Audiobook, Novels, Short Stories), the audience
(Adult, Young Adult, Childrens, Middle Grade), the reception (Classics, Literature, School) or the
nationality (American) rather than what the book is about. Pass ``genres=`` to use another list.

booklyn-books: Level 2 is the single Google Books category (35 labels). Level 1 maps the category:
Fiction, Juvenile Fiction, Comics & Graphic Novels and Poetry are fiction (`BOOKLYN_FICTION`),
every other category (including Literary Criticism and Performing Arts) is non-fiction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recfuse.errors import ConfigError, DataError

GOODREADS_GENRES: tuple[str, ...] = (
    "Fantasy", "Historical Fiction", "Contemporary", "Romance", "Mystery", "Thriller",
    "Historical", "Science Fiction", "History", "Adventure", "Biography", "Psychology",
    "Philosophy", "Self Help", "Memoir", "Humor", "Crime", "Horror", "Mystery Thriller", "Drama",
    "Literary Fiction", "Personal Development", "Suspense", "Science", "Politics", "Business",
    "Science Fiction Fantasy", "Dystopia", "War", "Religion", "Paranormal", "Spirituality",
)  # fmt: skip
"""Default Level 2 shelves for goodreads-books (content shelves on >= 100 books)."""

GOODREADS_EXCLUDED: tuple[str, ...] = (
    "Fiction", "Nonfiction", "Audiobook", "Novels", "Short Stories", "Adult", "Young Adult",
    "Childrens", "Middle Grade", "Classics", "Literature", "School", "American",
)  # fmt: skip
"""Frequent shelves deliberately left out of Level 2 (Level 1, format, audience, reception)."""

BOOKLYN_FICTION: tuple[str, ...] = (
    "Fiction",
    "Juvenile Fiction",
    "Comics & Graphic Novels",
    "Poetry",
)
"""booklyn-books categories mapped to Level 1 = fiction."""

LEVEL1_NAMES: tuple[str, str] = ("Nonfiction", "Fiction")


@dataclass(frozen=True)
class GenreLabels:
    """Labels of one book table, aligned with its rows.

    Attributes:
        dataset: table name.
        book_ids: [N] the table's ``book_id`` values.
        level1: [N] int8, 1 = fiction, 0 = non-fiction, -1 = unknown (never trained or scored).
        level2: [N, C] uint8 multi-hot over ``genres``.
        genres: the C Level 2 label names.
        single_label: each labeled book has exactly one Level 2 label (booklyn-books).
    """

    dataset: str
    book_ids: np.ndarray
    level1: np.ndarray
    level2: np.ndarray
    genres: tuple[str, ...]
    single_label: bool

    @property
    def labeled(self) -> np.ndarray:
        """[N] bool: rows with a known Level 1 label (the rows a model may train or be scored on)."""
        return self.level1 >= 0


def blurb_texts(table: pd.DataFrame) -> list[str]:
    """The blurb per row; the title stands in where the description is empty (12 goodreads rows)."""
    desc = table["description"].fillna("").astype(str).str.strip()
    title = table["title"].fillna("").astype(str).str.strip()
    return [d if d else t for d, t in zip(desc, title, strict=True)]


def goodreads_labels(
    table: pd.DataFrame, genres: tuple[str, ...] = GOODREADS_GENRES
) -> GenreLabels:
    """Labels for goodreads-books (columns ``book_id``, ``genres`` as lists of shelves)."""
    if not genres:
        raise ConfigError("goodreads genres: the Level 2 list is empty")
    overlap = set(genres) & {"Fiction", "Nonfiction"}
    if overlap:
        raise ConfigError(f"goodreads genres: {sorted(overlap)} are Level 1, not Level 2 labels")
    shelves = table["genres"].tolist()
    fiction = np.array(["Fiction" in s for s in shelves])
    nonfiction = np.array(["Nonfiction" in s for s in shelves])
    if (fiction & nonfiction).any():
        row = int(np.flatnonzero(fiction & nonfiction)[0])
        raise DataError(
            f"goodreads-books: book_id {table['book_id'].iloc[row]} is both Fiction and Nonfiction"
        )
    level1 = np.full(len(table), -1, dtype=np.int8)
    level1[fiction] = 1
    level1[nonfiction] = 0
    index = {g: j for j, g in enumerate(genres)}
    level2 = np.zeros((len(table), len(genres)), dtype=np.uint8)
    for i, s in enumerate(shelves):
        for g in s:
            if g in index:
                level2[i, index[g]] = 1
    return GenreLabels(
        "goodreads-books", table["book_id"].to_numpy(), level1, level2, tuple(genres), False
    )


def booklyn_labels(
    table: pd.DataFrame, fiction_categories: tuple[str, ...] = BOOKLYN_FICTION
) -> GenreLabels:
    """Labels for booklyn-books (column ``category``, one Google Books category per book)."""
    categories = table["category"].astype(str)
    genres = tuple(sorted(categories.unique()))
    unknown = set(fiction_categories) - set(genres)
    if unknown:
        raise ConfigError(f"booklyn fiction categories {sorted(unknown)} do not occur in the table")
    index = {g: j for j, g in enumerate(genres)}
    level2 = np.zeros((len(table), len(genres)), dtype=np.uint8)
    level2[np.arange(len(table)), categories.map(index).to_numpy()] = 1
    level1 = categories.isin(fiction_categories).to_numpy().astype(np.int8)
    return GenreLabels("booklyn-books", table["book_id"].to_numpy(), level1, level2, genres, True)


def make_labels(dataset: str, table: pd.DataFrame) -> GenreLabels:
    """Dispatch by dataset name (goodreads-books or booklyn-books)."""
    if dataset == "goodreads-books":
        return goodreads_labels(table)
    if dataset == "booklyn-books":
        return booklyn_labels(table)
    raise ConfigError(
        f"classify: dataset must be goodreads-books or booklyn-books, not {dataset!r}"
    )


def author_groups(dataset: str, table: pd.DataFrame) -> list[object]:
    """Per row, its author(s): a list cell joins co-authors into one group for the split."""
    if dataset == "booklyn-books":
        return [
            list(a) if isinstance(a, list | tuple | np.ndarray) else [a] for a in table["authors"]
        ]
    return table["author"].fillna("").astype(str).str.strip().tolist()
