"""Recommenders behind one interface: baselines, sequential backbones and item encoders."""

from recfuse.models.base import Recommender
from recfuse.models.bpr import BPR
from recfuse.models.classic import EASE, ItemKNN, Pop
from recfuse.models.i2i import EmbeddingI2I, ItemCF, Swing
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
    "itemcf": ItemCF,
    "swing": Swing,
    "embi2i": EmbeddingI2I,
}

__all__ = [
    "BPR",
    "EASE",
    "EmbeddingI2I",
    "GRU4Rec",
    "IdEncoder",
    "ItemEncoder",
    "ItemCF",
    "ItemKNN",
    "MODELS",
    "Pop",
    "Recommender",
    "SASRec",
    "SequentialRecommender",
    "Swing",
    "TorchRecommender",
    "TrainConfig",
]
