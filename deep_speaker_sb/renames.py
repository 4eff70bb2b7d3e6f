"""Old spellings kept for one release: options and functions renamed.

Issue #20 gave every concept one spelling (the table in docs/DESIGN.md,
"Names"); the old spellings stay for one release as deprecated aliases,
and go in the next:

- :func:`add_renamed_option`: a script's option with its old spellings;
  an old one sets the same value and prints one line
  ``warning: --old is deprecated; use --new`` to stderr (the help lists
  the new spelling only);
- :func:`renamed_alias`: a function or method under its old name, which
  warns (``DeprecationWarning``) and calls the new one.

Standard library only (no torch, no SpeechBrain), so that the torch-free
runtime and any script or benchmark worker can use it.

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

import argparse
import functools
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any


class _DeprecatedSpelling(argparse.Action):
    """Stores the value under the new option's ``dest`` and warns."""

    def __init__(self, option_strings: list[str], new: str, **kwargs: Any):
        self.new = new
        super().__init__(option_strings, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        print(
            f"warning: {option_string} is deprecated; use {self.new}",
            file=sys.stderr,
        )
        setattr(namespace, self.dest, values)


def add_renamed_option(
    parser: argparse.ArgumentParser | Any,
    new: str,
    old: str | Sequence[str],
    **kwargs: Any,
) -> argparse.Action:
    """Adds the option ``new`` (``parser.add_argument(new, **kwargs)``)
    and its deprecated spellings ``old``.

    An old spelling takes the same value (same ``type``, ``nargs``,
    ``choices``) into the same ``dest`` and prints
    ``warning: OLD is deprecated; use NEW`` to stderr.  Giving both
    spellings is refused, and ``required=True`` is met by either.

    Arguments
    ---------
    parser : argparse.ArgumentParser or argument group
        Where the option goes.
    new : str
        The option's one spelling, e.g. ``"--prep_folder"``.
    old : str or sequence of str
        Its deprecated spellings, e.g. ``"--save_folder"`` (hidden from
        the help).
    **kwargs
        ``add_argument``'s keywords for ``new`` (``action`` must be a
        value-storing one: the default).

    Returns
    -------
    argparse.Action
        The new option's action.

    Example
    -------
    >>> import contextlib, io
    >>> p = argparse.ArgumentParser()
    >>> _ = add_renamed_option(p, "--prep_folder", "--save_folder")
    >>> _ = add_renamed_option(p, "--n", ["--K", "--k"], type=int, default=4)
    >>> p.parse_args(["--prep_folder", "data"])
    Namespace(prep_folder='data', n=4)
    >>> err = io.StringIO()
    >>> with contextlib.redirect_stderr(err):
    ...     args = p.parse_args(["--save_folder", "data", "--K", "2"])
    >>> args
    Namespace(prep_folder='data', n=2)
    >>> print(err.getvalue(), end="")
    warning: --save_folder is deprecated; use --prep_folder
    warning: --K is deprecated; use --n
    """
    olds = [old] if isinstance(old, str) else list(old)
    required = bool(kwargs.pop("required", False))
    group = parser.add_mutually_exclusive_group(required=required)
    action = group.add_argument(new, **kwargs)
    same = ("dest", "type", "nargs", "choices", "metavar")
    for spelling in olds:
        group.add_argument(
            spelling,
            action=_DeprecatedSpelling,
            new=new,
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
            **{key: getattr(action, key) for key in same},
        )
    return action


def renamed_alias(new: Callable[..., Any], old: str) -> Callable[..., Any]:
    """``new`` under its deprecated name ``old``: a call warns
    (``DeprecationWarning``, shown where the caller's warnings filters
    show it) and returns ``new``'s result.  In a class body it makes a
    method alias (``embed = renamed_alias(encode_files, "embed")``).

    Example
    -------
    >>> def similarity(a, b):
    ...     return a * b
    >>> score = renamed_alias(similarity, "score")
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     value = score(2, 3)
    >>> value, str(caught[0].message)
    (6, 'score is deprecated; use similarity')
    """

    @functools.wraps(new)
    def alias(*args: Any, **kwargs: Any) -> Any:
        warnings.warn(
            f"{old} is deprecated; use {new.__name__}",
            DeprecationWarning,
            stacklevel=2,
        )
        return new(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old
    alias.__doc__ = (
        f"Deprecated name of :func:`{new.__name__}` (goes in the next release)."
    )
    return alias
