"""Serving: recommendations over HTTP from a saved run, every request gated and logged."""
