"""The exceptions that mean "the user must change something".

Library code raises these for mistakes of the user's (a missing folder, an
option out of range, broken input data); their message says what to do.
The command-line scripts print them as one ``error: ...`` line with a
non-zero exit (:func:`deep_speaker_sb.cli.run_cli`); every other exception
is a bug and keeps its traceback.

The subclasses also derive from the matching built-in exception, so that
Python callers may catch ``FileNotFoundError`` or ``ValueError`` as usual.

Example
-------
>>> issubclass(ConfigError, ValueError), issubclass(ConfigError, UserError)
(True, True)
>>> isinstance(MissingFileError("x"), FileNotFoundError)
True
>>> isinstance(OutputError("cannot write x: disk full"), OSError)
True
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake of the user's (bad path, bad option, bad data).

    Its message, which says what to do, is printed as one line by the
    command-line scripts.
    """


class ConfigError(UserError, ValueError):
    """An option or hyperparameter is out of range or inconsistent."""


class DataError(UserError, ValueError):
    """Input data (a manifest, trials file, audio file) cannot be used."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named (or must make first) is missing."""


class OutputError(UserError, OSError):
    """An output file or folder cannot be written (disk full, no
    permission, I/O error); nothing is marked done, so running the step
    again once the cause is fixed redoes what is missing."""
