"""Small shared helpers: path alias, atomic writes, the prep skip rule and
:func:`printable` (ids and paths made safe to print).

Every stage that writes files people rely on (manifests, trials, reports,
exports) writes them through :func:`atomic_write` so that an interrupted
run never leaves a truncated file behind, and decides whether it can skip
its work with :func:`outputs_up_to_date` / :func:`save_options`, the one
skip rule of the project.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import unicodedata
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

Pathlike = str | os.PathLike


OPTIONS_FILE = "options.json"

#: Characters that :func:`printable` escapes besides the control
#: characters: line and paragraph separators, bidirectional overrides.
_UNSAFE = frozenset(
    "\u2028\u2029"  # line and paragraph separators
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"  # bidi
)


def _escaped(char: str) -> str:
    if unicodedata.category(char) == "Cc" or char in _UNSAFE:
        return repr(char)[1:-1]
    return char


def printable(value: object) -> str:
    r"""``str(value)`` with control characters escaped as ``repr`` does
    (``\n``, ``\x1b``, ``\u202e``): an id or a path that a script prints
    stays on its line and cannot move the cursor or recolour the terminal
    (a speaker folder named ``"A\nspeaker: B"`` must not print a line of
    its own).  Everything else, letters of any script included, is kept.

    Example
    -------
    >>> print(printable("A\nspeaker: B \x1b[32m(accepted)"))
    A\nspeaker: B \x1b[32m(accepted)
    >>> printable("Nguyễn Văn/a b.wav")
    'Nguyễn Văn/a b.wav'
    """
    text = str(value)
    if text.isprintable():
        return text
    return "".join(_escaped(c) for c in text)


@contextlib.contextmanager
def atomic_write(
    path: Pathlike, mode: str = "w", encoding: str | None = "utf-8"
) -> Iterator[IO]:
    """Opens a temporary file beside ``path``; renames it on success.

    If the block raises, the temporary file is removed and ``path`` keeps
    whatever it held before (or stays absent).

    Arguments
    ---------
    path : Pathlike
        The final file.
    mode : str
        ``"w"`` for text or ``"wb"`` for bytes.
    encoding : str, optional
        Text encoding (ignored in binary mode).

    Yields
    ------
    file object
        The open temporary file.

    Example
    -------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_write(d / "a.txt") as f:
    ...     _ = f.write("hello")
    >>> (d / "a.txt").read_text()
    'hello'
    >>> try:
    ...     with atomic_write(d / "b.txt") as f:
    ...         _ = f.write("half")
    ...         raise KeyboardInterrupt
    ... except KeyboardInterrupt:
    ...     pass
    >>> sorted(p.name for p in d.iterdir())
    ['a.txt']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    os.close(fd)
    # mkstemp creates the file owner-only; give it the usual permissions.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        kwargs = {} if "b" in mode else {"encoding": encoding, "newline": ""}
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_json(path: Pathlike, obj: Any) -> None:
    """Writes ``obj`` as indented, sorted-key JSON, atomically.

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.json"
    >>> write_json(p, {"b": 1, "a": 2})
    >>> p.read_text().splitlines()[1]
    '  "a": 2,'
    """
    with atomic_write(path) as f:
        json.dump(obj, f, indent=2, sort_keys=True, ensure_ascii=False)
        f.write("\n")


def _canonical(options: dict[str, Any]) -> str:
    return json.dumps(options, sort_keys=True, default=str)


def outputs_up_to_date(
    folder: Pathlike,
    outputs: Sequence[Pathlike],
    options: dict[str, Any],
    options_file: str = OPTIONS_FILE,
) -> bool:
    """The project's one skip rule for data preparation and similar steps.

    A step may skip when every output exists *and* the options saved by
    :func:`save_options` in ``folder`` equal ``options``.

    Arguments
    ---------
    folder : Pathlike
        Folder holding the saved options file.
    outputs : sequence of Pathlike
        Files the step produces.
    options : dict
        The options of this run (JSON-serializable).
    options_file : str
        Name of the saved options file inside ``folder``.

    Returns
    -------
    bool
        True when the step can be skipped.

    Example
    -------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "out.csv").write_text("x")
    1
    >>> outputs_up_to_date(d, [d / "out.csv"], {"sr": 8000})
    False
    >>> save_options(d, {"sr": 8000})
    >>> outputs_up_to_date(d, [d / "out.csv"], {"sr": 8000})
    True
    >>> outputs_up_to_date(d, [d / "out.csv"], {"sr": 16000})
    False
    """
    folder = Path(folder)
    if not all(Path(p).is_file() for p in outputs):
        return False
    saved = folder / options_file
    if not saved.is_file():
        return False
    try:
        previous = json.loads(saved.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return _canonical(previous) == _canonical(options)


def save_options(
    folder: Pathlike,
    options: dict[str, Any],
    options_file: str = OPTIONS_FILE,
) -> None:
    """Saves ``options`` as sorted-key JSON in ``folder`` (atomically).

    Call it only after every output of the step is written, so that an
    interrupted step is redone on the next run.
    """
    write_json(Path(folder) / options_file, json.loads(_canonical(options)))
