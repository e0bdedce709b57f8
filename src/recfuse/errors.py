"""The one exception family recfuse raises for bad input.

The CLI turns any `RecfuseError` into a single line on stderr and exit code 2, so every message must
name what is wrong (file, line, column, key) on its own.
"""


class RecfuseError(Exception):
    """Base class: bad input or configuration, reported to the user as one line."""


class DataError(RecfuseError):
    """A dataset file is missing, truncated or malformed."""


class ConfigError(RecfuseError):
    """A configuration key or value is unknown or invalid."""


class LeakageError(RecfuseError):
    """Information from a held-out period would reach a model, a feature extractor or an LLM."""
