"""One error type for everything a user can get wrong: :class:`SoundloomError` and its kinds.

Every message names the file (when there is one) and the reason, so a face (CLI, studio) can
print ``str(err)`` as one line. Imports nothing heavy: the CLI catches these without loading
torch.
"""

from __future__ import annotations

import os


class SoundloomError(ValueError):
    """Bad input or a bad file. ``str(err)`` is ``"<path>: <reason>"`` or just the reason.

    Subclasses ``ValueError`` so callers that predate the hierarchy keep working.
    """

    def __init__(self, path_or_message: str | os.PathLike | None, reason: str | None = None):
        if reason is None:
            self.path, self.reason = None, str(path_or_message)
        else:
            self.path = str(path_or_message) if path_or_message is not None else None
            self.reason = reason
        super().__init__(f"{self.path}: {self.reason}" if self.path else self.reason)


class AudioError(SoundloomError):
    """Audio that cannot be read, written or used (unreadable, empty, non-finite, silent, too short)."""


class DataError(SoundloomError):
    """A data set or a derived store is missing, malformed or of another version."""


class LayoutError(DataError):
    """A folder does not hold a data set of the requested (or any) layout."""


class StoreError(DataError):
    """A feature store is missing, malformed or of another version."""


class PoolError(DataError):
    """A stream pool (chunk catalog) is missing, malformed or empty."""


class ModelFileError(SoundloomError):
    """A run or weights file is missing, malformed, foreign or does not fit its config."""


class ParameterError(SoundloomError):
    """An option or argument out of its range (a count below 1, an unknown model name, ...)."""


__all__ = [
    "SoundloomError",
    "AudioError",
    "DataError",
    "LayoutError",
    "StoreError",
    "PoolError",
    "ModelFileError",
    "ParameterError",
]
