"""Project exceptions: errors a user can cause, each with a message naming the thing and the fix.

``run.py`` catches :class:`SoftTrackError` and prints its message as one line instead of a
traceback; everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class SoftTrackError(Exception):
    """Base class of the errors a user can cause (bad input, bad configuration)."""


class ConfigError(SoftTrackError, ValueError):
    """An invalid option, argument or configuration value."""


class InputFileError(SoftTrackError, OSError):
    """A missing, unreadable, empty or corrupt input file, or a missing tree or branch."""


class FilesetError(SoftTrackError, ValueError):
    """A fileset JSON that does not follow the documented format."""


class ModelError(SoftTrackError, ValueError):
    """A missing or incompatible model file (wrong inputs, wrong shape)."""


class CorrectionError(SoftTrackError, KeyError):
    """A correction asked for an era, class or systematic it does not provide."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class YieldsError(SoftTrackError, ValueError):
    """A yields or workspace file that does not follow the documented format."""
