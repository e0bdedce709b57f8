"""Frozen foundation models: locate packaged or local weights and load them read-only."""

from recfuse.frozen.load import load_frozen, model_folder
from recfuse.frozen.locate import PACKAGED, ModelSource, locate_model

__all__ = ["PACKAGED", "ModelSource", "load_frozen", "locate_model", "model_folder"]
