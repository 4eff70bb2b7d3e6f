"""What every command-line script shares: one error line, non-zero exit.

The library raises exceptions whose messages tell the user what to do;
:func:`run_cli` turns the expected ones into a single ``error: ...`` line
on stderr and exit status 1 instead of a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)


class UserError(Exception):
    """A mistake of the user's (bad path, bad option, bad data).

    Its message is printed as one line by :func:`run_cli`.
    """


#: Exceptions a script reports as one line instead of a traceback.
EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    UserError,
    FileNotFoundError,
    NotADirectoryError,
    ValueError,
)


def run_cli(main: Callable[[], int | None]) -> int:
    r"""Runs ``main()`` and turns expected errors into one line and exit 1.

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
    """
    try:
        code = main()
    except EXPECTED_ERRORS as exc:
        logger.debug("command failed", exc_info=True)
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)
