"""The three probes: who-made-it, group-only model (out-of-fold), and the models they compare.

A group probe is passed around as a *fitter*: ``fit(rows) -> predict(rows) -> probabilities``.
Keeping row indices (not matrices) at this boundary lets tests check which rows each fold's
probe was trained on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.metrics import mean_squared_error, r2_score, roc_auc_score

from recfuse.audit.features import one_hot
from recfuse.audit.learner import NetConfig, fit_network
from recfuse.audit.neighbours import cosine_top_k
from recfuse.audit.table import Task

Predictor = Callable[[np.ndarray], np.ndarray]
GroupFitter = Callable[[np.ndarray], Predictor]


# ------------------------------------------------------------------ probe 1: who made it


def network_group_fitter(
    x: sp.csr_matrix, codes: np.ndarray, n_classes: int, seed: int, config: NetConfig
) -> GroupFitter:
    """A fitter for the group probe: an MLP from features to group class.

    Rows with code -1 (groups too small to name) are left out. It trains for a fixed number of
    epochs without early stopping: most groups have a handful of rows, so a held-out stop set
    would be both too small to judge and a waste of the rows that define the groups.
    """

    def fit(rows: np.ndarray) -> Predictor:
        rows = rows[codes[rows] >= 0]
        none = np.zeros(0, dtype=np.int64)
        net = fit_network(x, codes, "classification", rows, none, n_classes, seed, config)
        return lambda r: net.predict(x, r)

    return fit


def knn_group_fitter(
    x: sp.csr_matrix, codes: np.ndarray, n_classes: int, n_neighbors: int = 10
) -> GroupFitter:
    """A fitter for the group probe: cosine k-nearest neighbours, similarity-weighted votes.

    With few rows per group a memorizing probe is the strongest "who made it" detector (on binary
    fingerprints cosine ranks neighbours much like Tanimoto). Probabilities are [n, n_classes],
    non-zero for at most ``n_neighbors`` groups; a row with no similar neighbour gets the
    training group frequencies. Neighbours are exact, ties to the earlier training row
    (`recfuse.audit.neighbours`).
    """

    def fit(rows: np.ndarray) -> Predictor:
        rows = rows[codes[rows] >= 0]
        labels = codes[rows]
        k = min(n_neighbors, len(rows))
        index = x[rows]
        prior = np.bincount(labels, minlength=n_classes) / max(1, len(labels))

        def predict(query: np.ndarray) -> np.ndarray:
            probs = np.zeros((len(query), n_classes), dtype=np.float32)
            if len(query) == 0 or k == 0:
                return probs
            sims, idx = cosine_top_k(x[query], index, k)
            weight = np.clip(sims, 0.0, None)  # cosine similarity, never negative
            np.add.at(
                probs, (np.repeat(np.arange(len(query)), k), labels[idx].ravel()), weight.ravel()
            )
            total = probs.sum(1, keepdims=True)
            return np.where(total > 0, probs / np.maximum(total, 1e-12), prior).astype(np.float32)

        return predict

    return fit


def top_k_accuracy(probs: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Share of rows whose label is among the ``k`` highest probabilities (probs [n, C])."""
    if len(labels) == 0:
        return float("nan")
    k = min(k, probs.shape[1])
    top = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    return float(np.mean((top == labels[:, None]).any(axis=1)))


def chance_top_k(train_labels: np.ndarray, eval_labels: np.ndarray, k: int) -> float:
    """Top-k accuracy of the best feature-blind guess: always the k most frequent train groups."""
    if len(eval_labels) == 0:
        return float("nan")
    values, counts = np.unique(train_labels, return_counts=True)
    guess = values[np.argsort(-counts, kind="stable")[:k]]
    return float(np.isin(eval_labels, guess).mean())


def who_made_it(
    predict: Predictor,
    codes: np.ndarray,
    train_rows: np.ndarray,
    test_rows: np.ndarray,
    ks: Sequence[int] = (1, 5),
) -> dict[str, float]:
    """Probe 1 on the test rows whose group was seen in training: top-k vs chance.

    Returns ``top{k}``; ``frequent_top{k}`` (always guess the k most frequent training groups);
    ``uniform_top{k}`` (k groups at random: k / groups seen in training); ``chance_top{k}``, the
    better of those two feature-blind guesses (with balanced groups, a random split leaves the
    most frequent training groups with the fewest test rows, so the frequency guess alone would
    understate chance); ``n_eval`` and ``n_groups``.
    """
    train_labels = codes[train_rows][codes[train_rows] >= 0]
    seen = np.unique(train_labels)
    eval_rows = test_rows[np.isin(codes[test_rows], seen)]
    probs = predict(eval_rows)
    out: dict[str, float] = {"n_eval": float(len(eval_rows)), "n_groups": float(len(seen))}
    for k in ks:
        out[f"top{k}"] = top_k_accuracy(probs, codes[eval_rows], k)
        out[f"frequent_top{k}"] = chance_top_k(train_labels, codes[eval_rows], k)
        out[f"uniform_top{k}"] = min(1.0, k / max(1, len(seen)))
        out[f"chance_top{k}"] = max(out[f"frequent_top{k}"], out[f"uniform_top{k}"])
    return out


def shuffled_labels(codes: np.ndarray, seed: int) -> np.ndarray:
    """Group codes permuted among the labelled rows: the control that must fall to chance."""
    out = codes.copy()
    labelled = np.flatnonzero(codes >= 0)
    out[labelled] = codes[np.random.default_rng(seed).permutation(labelled)]
    return out


# ------------------------------------------------------------------ probe 2: group only


def out_of_fold_probabilities(
    fit: GroupFitter, train_rows: np.ndarray, n_rows: int, n_folds: int, seed: int
) -> tuple[np.ndarray, np.ndarray, Predictor]:
    """Group probabilities for every row without letting a row's own fold see it.

    Training rows are dealt into ``n_folds`` random folds; fold k's probabilities come from a
    probe fitted on the other folds. Every other row (valid, test) gets probabilities from a
    probe fitted on all training rows, which never saw it.

    Returns (probs [n_rows, n_classes] float32, fold [n_rows] with -1 outside training,
    the all-training predictor).
    """
    fold = np.full(n_rows, -1, dtype=np.int64)
    fold[train_rows] = np.random.default_rng(seed).permutation(len(train_rows)) % n_folds
    full = fit(train_rows)
    outside = np.setdiff1d(np.arange(n_rows), train_rows)
    outside_probs = full(outside)
    probs = np.zeros((n_rows, outside_probs.shape[1]), dtype=np.float32)
    probs[outside] = outside_probs
    for k in range(n_folds):
        held = np.flatnonzero(fold == k)
        probs[held] = fit(np.flatnonzero((fold >= 0) & (fold != k)))(held)
    return probs, fold, full


def sparse_top_k(probs: np.ndarray, k: int) -> sp.csr_matrix:
    """Keep each row's ``k`` largest probabilities (CSR [n, C]); the tail is noise and cost."""
    k = min(k, probs.shape[1])
    top = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    rows = np.repeat(np.arange(len(probs)), k)
    return sp.csr_matrix(
        (probs[rows, top.ravel()].astype(np.float32), (rows, top.ravel())), shape=probs.shape
    )


def with_context(context: np.ndarray | None, n_contexts: int, x: sp.csr_matrix) -> sp.csr_matrix:
    """[one-hot context | x] as CSR; just x when there is no context."""
    if context is None:
        return sp.csr_matrix(x)
    return sp.hstack([one_hot(context, n_contexts), x], format="csr", dtype=np.float32)


# ------------------------------------------------------------------ target models and scores


def fit_predict_target(
    x: sp.csr_matrix,
    y: np.ndarray,
    task: Task,
    n_classes: int,
    parts: np.ndarray,
    seed: int,
    config: NetConfig,
) -> np.ndarray:
    """Fit on part 0, stop early on part 1, predict part 2 (probs [n, C] or values [n])."""
    net = fit_network(
        x,
        y,
        task,
        np.flatnonzero(parts == 0),
        np.flatnonzero(parts == 1),
        max(n_classes, 1),
        seed,
        config,
    )
    return net.predict(x, np.flatnonzero(parts == 2))


def context_only_predict(
    context: np.ndarray | None, y: np.ndarray, task: Task, n_classes: int, parts: np.ndarray
) -> np.ndarray:
    """The null model: per-context training mean (or class frequencies), global for unseen."""
    train = parts == 0
    test = np.flatnonzero(parts == 2)
    ctx = np.zeros(len(y), np.int64) if context is None else context
    if task == "regression":
        overall = y[train].mean()
        sums = np.bincount(ctx[train], weights=y[train], minlength=ctx.max() + 1)
        counts = np.bincount(ctx[train], minlength=ctx.max() + 1)
        means = np.where(counts > 0, sums / np.maximum(counts, 1), overall)
        return means[ctx[test]]
    table = np.zeros((ctx.max() + 1, n_classes))
    np.add.at(table, (ctx[train], y[train].astype(np.int64)), 1.0)
    overall = table.sum(0) / table.sum()
    rows = table[ctx[test]]
    totals = rows.sum(1, keepdims=True)
    return np.where(totals > 0, rows / np.maximum(totals, 1), overall)


def score(task: Task, y_true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Metrics of one prediction. The primary metric (``main``) is R² for regression, ROC-AUC
    for two classes and accuracy for more."""
    if task == "regression":
        r2 = float(r2_score(y_true, pred))
        rmse = float(np.sqrt(mean_squared_error(y_true, pred)))
        return {"main": r2, "r2": r2, "rmse": rmse}
    accuracy = float(np.mean(pred.argmax(1) == y_true))
    out = {"accuracy": accuracy}
    if pred.shape[1] == 2:
        both = len(np.unique(y_true)) == 2
        out["auc"] = float(roc_auc_score(y_true, pred[:, 1])) if both else float("nan")
        out["main"] = out["auc"]
    else:
        out["main"] = accuracy
    return out


def main_metric_name(task: Task, n_classes: int) -> str:
    """The name of ``score``'s primary metric for this task."""
    if task == "regression":
        return "R²"
    return "ROC-AUC" if n_classes == 2 else "accuracy"
