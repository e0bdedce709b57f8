"""Recommenders behind one interface: baselines, sequential backbones and item encoders."""

from recfuse.models.base import Recommender
from recfuse.models.bpr import BPR
from recfuse.models.classic import EASE, ItemKNN, Pop
from recfuse.models.item_encoders import IdEncoder, ItemEncoder
from recfuse.models.sequential import GRU4Rec, SASRec, SequentialRecommender
from recfuse.models.training import TorchRecommender, TrainConfig

MODELS: dict[str, type[Recommender]] = {
    "pop": Pop,
    "itemknn": ItemKNN,
    "ease": EASE,
    "bpr": BPR,
    "sasrec": SASRec,
    "gru4rec": GRU4Rec,
}

__all__ = [
    "BPR",
    "EASE",
    "GRU4Rec",
    "IdEncoder",
    "ItemEncoder",
    "ItemKNN",
    "MODELS",
    "Pop",
    "Recommender",
    "SASRec",
    "SequentialRecommender",
    "TorchRecommender",
    "TrainConfig",
]
