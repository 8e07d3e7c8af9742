"""The error types AutoSpec raises for bad input (a user's data, files, settings or call).

Every one derives from :class:`AutoSpecError`, so the command line can catch exactly these and
print them as one line, while anything else (a bug of ours) keeps its traceback. Each also
derives from the built-in type that describes it (ValueError, KeyError...), so ``except
ValueError`` in user code keeps working.
"""


class AutoSpecError(Exception):
    """Base of every error that reports bad input rather than a bug."""


class UsageError(AutoSpecError):
    """Bad command-line input: reported in one line, exit code 2."""
