"""The error types of the data set generators and loaders.

Each derives from :class:`autospec.errors.AutoSpecError` (bad input, reported in one line) and
from the built-in type that describes it, so ``except ValueError`` keeps working.
"""
from ..errors import AutoSpecError


class DatasetError(AutoSpecError, ValueError):
    """Bad data or a bad argument: a malformed file, a wrong shape, bad labels, NaN values..."""


class DatasetTypeError(DatasetError, TypeError):
    """An argument or array of the wrong kind (e.g. text where numbers are needed)."""


class DataFileNotFoundError(DatasetError, FileNotFoundError):
    """A data file or folder that does not exist."""


class DatasetIndexError(DatasetError, IndexError):
    """Sample indices outside the data set."""
