"""LLM-I2I study (issue 17): data refinement for item-to-item models."""
