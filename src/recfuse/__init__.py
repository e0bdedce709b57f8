"""recfuse: frozen foundation models for recommender systems."""

__version__ = "0.1.0"
