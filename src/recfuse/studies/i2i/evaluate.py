"""One I2I cell: fit on the arm's edges (choosing the drop fraction on validation), evaluate with
the trigger protocol, slice by target and trigger popularity."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from recfuse.evaluation import Evaluator
from recfuse.studies.i2i.data import RefinedData

KS = (10, 20, 50)
#: target-popularity buckets for the gain plot (training counts)
POP_BUCKETS = (0, 2, 5, 10, 20, 50, np.inf)


def pop_bucket(counts: np.ndarray) -> np.ndarray:
    """Bucket label of each training count, e.g. '3-5'."""
    labels = np.array([f"{int(a) + 1}-{'' if np.isinf(b) else int(b)}"
                       for a, b in zip(POP_BUCKETS[:-1], POP_BUCKETS[1:], strict=True)])  # fmt: skip
    return labels[np.digitize(counts, POP_BUCKETS[1:-1], right=True)]


def run_i2i_cell(model: Any, refined: RefinedData, data: str, fractions: list[float | None]) -> Any:
    """Fit ``model`` on each candidate fraction's edges, keep the best by validation Recall@10,
    then evaluate it once on the test targets."""
    from recfuse.runs.study import CellResult

    split = refined.split
    evaluator = Evaluator(split, ks=KS)
    best: tuple[float, float | None, Any] | None = None
    started = time.perf_counter()

    def validation_recall(fitted: Any) -> float:  # also a trained model's epoch choice
        return float(evaluator.evaluate(fitted, "valid").metrics["Recall@10"])

    for fraction in fractions:
        model.fit(split, edges=refined.get(data, fraction), validate=validation_recall)
        recall = validation_recall(model)
        if best is None or recall > best[0]:
            # an I2I model is its similarity: keeping it saves refitting the chosen fraction
            best = (recall, fraction, (model.similarity_, getattr(model, "epochs_", None)))
    assert best is not None
    valid_recall, fraction, (model.similarity_, epochs) = best
    edges = refined.get(data, fraction)
    fit_s = time.perf_counter() - started
    test = evaluator.evaluate(model, "test")
    per_user = i2i_per_user(test.per_user, split, evaluator)
    metrics = {f"{m}@{k}": test.metrics[f"{m}@{k}"] for m in ("Recall", "NDCG") for k in KS}
    tail = per_user["target_tail"] >= 0.5
    metrics["tail Recall@10"] = float(per_user.loc[tail, "Recall@10"].mean())
    metrics["head Recall@10"] = float(per_user.loc[~tail, "Recall@10"].mean())
    metrics["valid Recall@10"] = valid_recall
    info = {
        "fraction": fraction,
        "edges": len(edges),
        "synthetic": int(edges["synthetic"].sum()),
        "fit_seconds": round(fit_s, 2),
        "eval_seconds": round(test.seconds, 2),
        "params": model.get_params(),
        "epochs": epochs,
    }
    return CellResult(metrics, per_user, info)


def i2i_per_user(per_user: pd.DataFrame, split: Any, evaluator: Evaluator) -> pd.DataFrame:
    """Per-user test rows with the tail-only metric (NaN for head targets) and the trigger's
    and target's popularity buckets."""
    hist = evaluator.histories("test")
    users = per_user["user"].to_numpy()
    trigger = np.array([h[-1] if len(h) else -1 for h in hist], dtype=np.int64)[users]
    pop = evaluator.item_popularity
    out = per_user[["user", "Recall@10", "NDCG@10", "Recall@50", "target_tail", "target_pop"]]
    out = out.copy()
    out["tail Recall@10"] = np.where(out["target_tail"] >= 0.5, out["Recall@10"], np.nan)
    out["trigger_pop"] = np.where(trigger >= 0, pop[np.maximum(trigger, 0)], 0)
    return out
