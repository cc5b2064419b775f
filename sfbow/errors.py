"""The errors sfbow documents for callers to catch.

Bad arguments are ``ValueError`` / ``TypeError`` naming the argument. A file that cannot be what it
claims to be has its own class, so a caller can tell "this model file is damaged" from a bug in
their own call.
"""

from __future__ import annotations

__all__ = ["ModelFileError"]


class ModelFileError(ValueError):
    """A model file that is not a valid sfbow model: truncated, edited, corrupt, or another format.

    The message names the file and what is wrong with it. A subclass of ``ValueError``, so code that
    catches ``ValueError`` keeps working.
    """
