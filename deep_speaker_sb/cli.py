"""What every command-line script shares: one error line, non-zero exit.

The library raises :class:`~deep_speaker_sb.errors.UserError` (and its
subclasses) with messages that tell the user what to do; :func:`run_cli`
turns them into a single ``error: ...`` line on stderr and exit status 1
instead of a traceback, its control characters escaped
(:func:`~deep_speaker_sb.utils.printable`: a path holding a newline or a
terminal escape stays visible and on the one line).  Any other exception
is a bug and keeps its traceback.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from ruamel.yaml import YAMLError

from deep_speaker_sb.config import check_hparams, check_recipe_values
from deep_speaker_sb.errors import ConfigError, MissingFileError, UserError
from deep_speaker_sb.utils import printable


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
    >>> def evil():
    ...     raise UserError("not found: /a\nerror: fake\x1b[2J")
    >>> with contextlib.redirect_stderr(err := io.StringIO()):
    ...     code = run_cli(evil)
    >>> print(err.getvalue(), end="")
    error: not found: /a\nerror: fake\x1b[2J
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
        msg = printable(user_message(exc)) or type(exc).__name__
        print(f"error: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


def user_message(exc: UserError) -> str:
    """The message a user error prints (``run_cli`` escapes its control
    characters, so it stays one line), or, for one raised in a DataLoader
    worker process (which torch raises again with the worker's traceback
    in its message), the worker's own message.

    Example
    -------
    >>> from deep_speaker_sb.errors import DataError
    >>> user_message(DataError("audio file a.wav cannot be read"))
    'audio file a.wav cannot be read'
    >>> user_message(DataError(
    ...     "Caught DataError in DataLoader worker process 0.\\n"
    ...     "Original Traceback (most recent call last):\\n"
    ...     '  File "x.py", line 1, in f\\n'
    ...     "deep_speaker_sb.errors.DataError: audio file a.wav cannot be "
    ...     "read\\n"))
    'audio file a.wav cannot be read'
    """
    text = str(exc)
    lines = text.rstrip().splitlines()
    if (
        len(lines) >= 2
        and lines[0].startswith("Caught ")
        and (lines[1].startswith("Original Traceback"))
    ):
        prefix = f"{type(exc).__module__}.{type(exc).__name__}: "
        last = lines[-1]
        if last.startswith(prefix):
            return last.removeprefix(prefix)
    return text.strip()


def check_device(device: str | None) -> None:
    """Refuses a ``--device`` this machine cannot run (one clear line).

    Example
    -------
    >>> check_device("cpu")
    >>> check_device("gpu0")
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.ConfigError: --device gpu0: use cpu, cuda or ...
    """
    if device is None or device == "cpu":
        return
    match = re.fullmatch(r"cuda(?::(\d+))?", device)
    if match is None:
        raise ConfigError(
            f"--device {device}: use cpu, cuda or cuda:N (N a GPU index)"
        )
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(match.group(1) or 0)
    if index >= count:
        raise ConfigError(
            f"--device {device}: this machine has {count} CUDA device(s); "
            "use --device cpu"
        )


def parse_recipe_args(
    argv: Sequence[str],
) -> tuple[str, dict[str, Any], str]:
    """SpeechBrain's ``parse_arguments``, with the device checked.

    Returns
    -------
    (hparams_file, run_opts, overrides)
    """
    hparams_file, run_opts, overrides = sb.parse_arguments(list(argv))
    check_device(run_opts.get("device"))
    return hparams_file, run_opts, overrides


def load_recipe_hparams(hparams_file: str, overrides: str) -> dict[str, Any]:
    """Loads a recipe YAML with command-line overrides; every mistake
    in them (a missing file, an unknown or repeated key, a YAML syntax
    error, a value of the wrong type or out of range
    (:mod:`deep_speaker_sb.config`), a class that does not exist) is one
    :class:`ConfigError` line.

    Arguments
    ---------
    hparams_file : str
        The YAML file.
    overrides : str
        The overrides, as ``parse_recipe_args`` returns them.

    Returns
    -------
    dict
        The loaded hyperparameters.

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "h.yaml"
    >>> _ = p.write_text("lr: 0.1\\n")
    >>> load_recipe_hparams(str(p), "lr: 0.2")
    {'lr': 0.2}
    >>> load_recipe_hparams(str(p), "rate: 0.2")
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.ConfigError: unknown option --rate: ...
    >>> load_recipe_hparams(str(p), "lr: -1")
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.ConfigError: lr must be a number > 0, got -1
    >>> _ = p.write_text("lr: 0.1\\nopt: !name:torch.optim.Adamm\\n")
    >>> load_recipe_hparams(str(p), "")
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.ConfigError: ...torch.optim.Adamm (a misspelt ...
    """
    path = Path(hparams_file)
    if not path.is_file():
        raise MissingFileError(f"hyperparameter file not found: {path}")
    # the ranges, before any object is built (a constructor given a bad
    # value fails with a message about something else, or not at all)
    check_recipe_values(path.read_text(encoding="utf-8"), overrides)
    try:
        with open(path, encoding="utf-8") as fin:
            hparams = load_hyperpyyaml(fin, overrides)
    except UserError:  # a constructor's own check: its message is right
        raise
    except ImportError as exc:
        if not str(exc).startswith("There is no such"):
            raise  # a missing dependency: keep the traceback
        raise ConfigError(
            f"{path} or the command-line options name something that does "
            f"not exist: {exc} (a misspelt class or function?)"
        ) from None
    except KeyError as exc:
        found = re.search(r"Override '([^']+)' not found", str(exc))
        if found is None:
            raise
        raise ConfigError(
            f"unknown option --{found.group(1)}: {path} has no such key"
        ) from None
    except YAMLError as exc:
        first = " ".join(str(exc).split())[:200]
        raise ConfigError(
            f"{path} or the command-line options are not valid YAML (a key "
            f"given twice?): {first}"
        ) from None
    except (TypeError, ValueError) as exc:
        text = " ".join(str(a) for a in exc.args) if exc.args else str(exc)
        first = " ".join(text.split())[:200]
        raise ConfigError(
            f"a value in {path} or the command-line options has the wrong "
            f"type: {first}"
        ) from None
    check_hparams(hparams)  # values made by !ref, too
    return hparams
