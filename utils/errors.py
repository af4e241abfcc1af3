"""The project's exception types.

Every problem a user can cause (a malformed file, a missing dataset, a bad flag) raises one of
these with a message that names the file or argument and says what is wrong. Scripts turn them
into one line on stderr and exit code 2 (see ``utils.cli``); anything else is a bug and keeps its
traceback.
"""


class LSTMFCNError(Exception):
    """Base class of every error this project raises on purpose."""


class DatasetError(LSTMFCNError, ValueError):
    """A data file or array is malformed or inconsistent (names the file and the problem)."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset is not on disk; the message says where we looked and how to get it."""


class ConfigurationError(LSTMFCNError, ValueError):
    """A bad argument or command-line flag (names the argument and the accepted values)."""
