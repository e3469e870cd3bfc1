"""Errors that reach the user as one clear line.

Every message names the setting or input in backticks and says what to do. The CLI
prints `str(error)` and exits non-zero; anything that is not an `MmsrarecError` is a bug.
"""


class MmsrarecError(Exception):
    """Base class: an error the user can fix."""


class ConfigError(MmsrarecError):
    """A setting is invalid or conflicts with another."""


class DataError(MmsrarecError):
    """An input file or id is malformed, missing or unknown."""


class NotPreparedError(DataError):
    """A dataset, model or index was asked for before it was built."""


class ModelNotFoundError(MmsrarecError):
    """A model id or path cannot be resolved offline."""
