"""Evaluation: full-ranking metrics, slices, significance, the validation score for early stopping."""

from recfuse.evaluation.evaluator import EvalResult, Evaluator, slice_table
from recfuse.evaluation.metrics import beyond_accuracy, gini, ranking_metrics
from recfuse.evaluation.significance import PairedTest, paired_test
from recfuse.evaluation.validation import fit_validated, validation_score

__all__ = [
    "EvalResult",
    "Evaluator",
    "PairedTest",
    "beyond_accuracy",
    "fit_validated",
    "gini",
    "paired_test",
    "ranking_metrics",
    "slice_table",
    "validation_score",
]
