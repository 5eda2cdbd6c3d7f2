"""Project exceptions: errors a user can cause, each with a message naming the thing and the fix.

``run.py`` catches :class:`SoftTrackError` and prints its message as one line instead of a
traceback; everything else is a bug and keeps its traceback.

Which errors a run may skip: only :class:`DataFileError`, a data file of the fileset that
cannot be read (missing, unreachable, empty, not ROOT, truncated, without the tree or a
branch the processor reads). A transient one (a timeout, a dropped connection) is retried
first, with backoff. Every other error fails the run at once, whatever ``--skip-bad-files``
says: a model (:class:`ModelError`), a corrections file (:class:`CorrectionError`), the
configuration (:class:`ConfigError`), the fileset (:class:`FilesetError`), another input
file such as R&S templates (:class:`InputFileError`) or the code (:class:`ProcessingError`
wraps what a worker raised). None of these derives from ``ValueError`` or ``KeyError``, so a
generic ``except ValueError`` cannot swallow a bad model as if it were bad data.
"""

from __future__ import annotations


class SoftTrackError(Exception):
    """Base class of the errors a user can cause (bad input, bad configuration)."""

    #: lines printed before the one-line message (e.g. the list of skipped inputs)
    details: tuple[str, ...] = ()


class ConfigError(SoftTrackError, ValueError):
    """An invalid option, argument or configuration value."""


class InputFileError(SoftTrackError, OSError):
    """A missing, unreadable, empty or corrupt input file (a model, templates, a yields file,
    a processor output, ...). Fatal in a run; a *data* file of the fileset raises
    :class:`DataFileError` instead."""

    def __str__(self) -> str:  # OSError would format (errno, strerror) pairs
        return str(self.args[0]) if self.args else ""


class DataFileError(InputFileError):
    """A data file of the fileset that cannot be read, or lacks the tree or a branch the
    processor reads: the only error ``--skip-bad-files`` skips. ``transient`` (a timeout, a
    dropped connection) is retried first; a file that is missing, empty, not ROOT or lacks a
    branch is not."""

    def __init__(self, message: str, path: str | None = None, transient: bool = False):
        super().__init__(message)
        self.path, self.transient = path, transient

    def __reduce__(self):  # keep path and transient across processes
        return (type(self), (str(self), self.path, self.transient))


class SkippedInputError(DataFileError):
    """Inputs were skipped and ``--skip-bad-files`` was not given: ``details`` lists them."""

    def __init__(self, message: str, details: tuple[str, ...] = ()):
        super().__init__(message)
        self.details = tuple(details)

    def __reduce__(self):
        return (type(self), (str(self), self.details))


class ProcessingError(SoftTrackError):
    """A chunk failed on something that is not its data file (a model, corrections, the
    configuration, the code); ``traceback`` holds the worker's traceback, if any."""

    def __init__(self, message: str, traceback: str = ""):
        super().__init__(message)
        self.traceback = traceback

    def __reduce__(self):
        return (type(self), (str(self), self.traceback))


class FilesetError(SoftTrackError, ValueError):
    """A fileset JSON that does not follow the documented format."""


class ModelError(SoftTrackError):
    """A missing or incompatible model file (wrong inputs, wrong shape)."""


class CorrectionError(SoftTrackError):
    """A correction asked for an era, class or systematic it does not provide."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class YieldsError(SoftTrackError, ValueError):
    """A yields or workspace file that does not follow the documented format."""
