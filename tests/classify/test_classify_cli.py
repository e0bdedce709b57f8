import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from recfuse.classify.cli import app
from recfuse.classify.item_genres import crossfit_genres


@pytest.mark.slow
def test_classify_genres_writes_an_item_feature_table(tmp_path, booklyn_slice) -> None:
    out = tmp_path / "genres.parquet"
    result = CliRunner().invoke(
        app, ["genres", "--dataset", "booklyn-books", "--limit", "40", "--folds", "3",
              "--method", "flat_logreg", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out)
    assert len(table) == 40 and table["book_id"].is_unique
    assert set(table["level1"]) <= {"Fiction", "Nonfiction"}
    assert all(len(g) == 1 for g in table["genres"])  # single-label data: exactly one genre
    probs = table.filter(like="p_genre:")
    assert (
        probs.shape[1] == len(booklyn_slice.labels.genres)
        and ((probs >= 0) & (probs <= 1)).all().all()
    )
    assert (out.parent / "genres.parquet.json").is_file()
    assert "out-of-fold" in result.output


def test_crossfit_predicts_every_book_out_of_fold(make_corpus) -> None:
    corpus = make_corpus(n=150, n_genres=4)
    corpus.labels.level1[:10] = -1  # unlabeled books are predicted, never trained on
    table, report = crossfit_genres(corpus, "flat_logreg", folds=3, seed=0)
    assert len(table) == 150 and (table["fold"] >= 0).all()
    assert report["labeled_books"] == 140
    assert report["out_of_fold_scores"]["l2_micro_f1"] > 0.7
    assert not np.asarray(table["labeled"])[:10].any()


def test_bad_method_or_dataset_is_refused(tmp_path) -> None:
    from recfuse.errors import ConfigError

    result = CliRunner().invoke(app, ["genres", "--dataset", "booklyn-books", "--method", "nope"])
    assert isinstance(result.exception, ConfigError) and "--method" in str(result.exception)
    result = CliRunner().invoke(app, ["genres", "--dataset", "ml-100k"])
    assert isinstance(result.exception, ConfigError) and "--dataset" in str(result.exception)
