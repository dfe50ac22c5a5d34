"""Errors that are the user's to fix: the CLI prints them on one line and exits non-zero."""


class PgdbenchError(Exception):
    """Base class of the errors the command line reports without a traceback."""


class UsageError(PgdbenchError, ValueError):
    """A bad argument: unknown backend, wrong shapes, batch size out of range, ..."""


class DataError(PgdbenchError, ValueError):
    """A data file that is missing, truncated, corrupt, or holds values that cannot be trained on."""


class OutputError(PgdbenchError):
    """A results file, parameter file or report folder that cannot be written (a folder in its place, no
    permission, a read-only or full disk)."""


class BackendUnavailable(PgdbenchError, RuntimeError):
    """The backend cannot run on this machine (missing package, no GPU, no MPI)."""


class DivergedError(PgdbenchError, FloatingPointError):
    """Training produced NaN or infinite parameters or loss."""
