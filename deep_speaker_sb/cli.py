"""What every command-line script shares: one error line, non-zero exit.

The library raises :class:`~deep_speaker_sb.errors.UserError` (and its
subclasses) with messages that tell the user what to do; :func:`run_cli`
turns them into a single ``error: ...`` line on stderr and exit status 1
instead of a traceback.  Any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from deep_speaker_sb.errors import UserError


def run_cli(main: Callable[[], int | None]) -> int:
    r"""Runs ``main()`` and turns user errors into one line and exit 1.

    Arguments
    ---------
    main : callable
        The script's main function; its return value is the exit code
        (``None`` means 0).

    Returns
    -------
    int
        The exit status to hand to ``sys.exit``.

    Example
    -------
    >>> def bad():
    ...     raise UserError("no such folder: /nope")
    >>> import contextlib, io
    >>> err = io.StringIO()
    >>> with contextlib.redirect_stderr(err):
    ...     code = run_cli(bad)
    >>> code, err.getvalue()
    (1, 'error: no such folder: /nope\n')
    >>> def bug():
    ...     raise KeyError("a bug keeps its traceback")
    >>> run_cli(bug)
    Traceback (most recent call last):
    ...
    KeyError: 'a bug keeps its traceback'
    """
    try:
        code = main()
    except UserError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)
