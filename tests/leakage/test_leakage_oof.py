"""Out-of-fold group probabilities never come from a model that saw the row's own fold."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recfuse.audit.probes import (
    knn_group_fitter,
    out_of_fold_probabilities,
    top_k_accuracy,
)


def test_each_fold_model_is_fit_without_its_own_rows() -> None:
    n_rows, n_classes = 300, 4
    train = np.sort(np.random.default_rng(0).choice(n_rows, 200, replace=False))
    fits: list[np.ndarray] = []
    predicted_by: dict[int, int] = {}

    def recording_fitter(rows: np.ndarray):  # noqa: ANN202 - a fitter returns a predictor
        model_id = len(fits)
        fits.append(np.array(rows))

        def predict(query: np.ndarray) -> np.ndarray:
            for r in query:
                predicted_by[int(r)] = model_id
            return np.full((len(query), n_classes), 1.0 / n_classes, dtype=np.float32)

        return predict

    probs, fold, _ = out_of_fold_probabilities(recording_fitter, train, n_rows, 5, seed=1)
    assert probs.shape == (n_rows, n_classes)
    assert set(predicted_by) == set(range(n_rows))  # every row got probabilities
    for row, model_id in predicted_by.items():
        fitted_on = set(fits[model_id].tolist())
        assert row not in fitted_on  # never its own row ...
        if fold[row] >= 0:  # ... and for a training row, none of its fold
            assert not fitted_on & set(np.flatnonzero(fold == fold[row]).tolist())
            assert fitted_on <= set(train.tolist())
    outside = np.setdiff1d(np.arange(n_rows), train)
    assert set(fits[predicted_by[int(outside[0])]].tolist()) == set(train.tolist())
    assert np.all(fold[outside] == -1)
    assert sorted(np.bincount(fold[train]).tolist()) == [40] * 5


def test_memorizing_probe_is_at_chance_out_of_fold() -> None:
    # Pure-noise features and random labels: only memorization can name a row's group. A 1-NN
    # probe names every training row perfectly in-sample; out of fold it must be at chance.
    rng = np.random.default_rng(0)
    n_rows, n_classes = 600, 10
    x = sp.csr_matrix(rng.normal(size=(n_rows, 64)).astype(np.float32))
    codes = rng.integers(0, n_classes, size=n_rows)
    train = np.arange(500)
    fit = knn_group_fitter(x, codes, n_classes, n_neighbors=1)
    in_sample = top_k_accuracy(fit(train)(train), codes[train], 1)
    assert in_sample > 0.99  # the detector has power: a leak would show up as this
    probs, _, _ = out_of_fold_probabilities(fit, train, n_rows, 5, seed=0)
    out_of_fold = top_k_accuracy(probs[train], codes[train], 1)
    assert out_of_fold < 0.2  # chance is 0.1
