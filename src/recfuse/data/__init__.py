"""Datasets: named real datasets, a user's own files, k-core filtering and statistics."""

from recfuse.data.catalog import (
    CATALOG,
    dataset_folder,
    load_dataset,
    load_interactions_file,
    load_table,
)
from recfuse.data.dataset import Dataset, build_dataset, filter_min_rating, k_core
from recfuse.data.fingerprint import dataset_fingerprint, interactions_fingerprint

__all__ = [
    "CATALOG",
    "Dataset",
    "build_dataset",
    "dataset_fingerprint",
    "dataset_folder",
    "filter_min_rating",
    "interactions_fingerprint",
    "k_core",
    "load_dataset",
    "load_interactions_file",
    "load_table",
]
