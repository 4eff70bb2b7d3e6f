"""What the corpus listers share: file ids, audio files, trial lists.

Every corpus module (:mod:`~deep_speaker_sb.data.folders`,
:mod:`~deep_speaker_sb.data.voxceleb`,
:mod:`~deep_speaker_sb.data.cnceleb`,
:mod:`~deep_speaker_sb.data.librispeech`,
:mod:`~deep_speaker_sb.data.vietnam_celeb`) only lists utterances;
:func:`deep_speaker_sb.data.prep.prepare_corpus` does the rest.  The
helpers here are the parts of a listing that several corpora need:

- :func:`safe_id`: a file-name and ``trials.txt`` safe id;
- :func:`audio_files`: the audio files under a folder, sorted;
- :func:`read_trial_list` and :func:`official_trials`: an official trial
  list read as it is, its file names mapped to utterance ids, with an
  error naming the first file that the corpus does not hold;
- :func:`trial_listing`: the test utterances are the trial files, the
  train utterances every file of the other speakers;
- :func:`prepare_with_trials`: the preparation of a corpus listed with
  its trial list.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from speechbrain.utils.logger import get_logger

from deep_speaker_sb.data.prep import (
    Listing,
    PrepOptions,
    Skipped,
    SourceUtterance,
    prepare_corpus,
)
from deep_speaker_sb.data.trials import Trial
from deep_speaker_sb.errors import DataError, MissingFileError
from deep_speaker_sb.utils import Pathlike

logger = get_logger(__name__)

#: What libsndfile reads and the listers look for (besides VoxCeleb2's
#: ``.m4a``, which ffmpeg decodes).
AUDIO_SUFFIXES = (".wav", ".flac")

#: One line of a trial list: ``(line_number, label, enrol, test)``.
TrialLine = tuple[int, int, str, str]


def safe_id(text: str) -> str:
    """``text`` with every run of characters other than letters, digits,
    ``.``, ``-`` and ``_`` replaced by ``_`` (ids name files and are
    space-separated in ``trials.txt``).

    Example
    -------
    >>> safe_id("Nguyễn Văn A/take 1")
    'Nguyễn_Văn_A_take_1'
    """
    return re.sub(r"[^\w.-]+", "_", text).strip("_") or "_"


def audio_files(
    folder: Path, suffixes: Sequence[str] = AUDIO_SUFFIXES
) -> list[Path]:
    """The files under ``folder`` (any depth) with one of ``suffixes``
    (any case), hidden ones left out, in sorted order.

    Example
    -------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("b/2.FLAC", "a/x/1.wav", "a/.3.wav", "a/notes.txt"):
    ...     (d / name).parent.mkdir(parents=True, exist_ok=True)
    ...     _ = (d / name).write_bytes(b"")
    >>> [p.relative_to(d).as_posix() for p in audio_files(d)]
    ['a/x/1.wav', 'b/2.FLAC']
    """
    wanted = {s.lower() for s in suffixes}
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in wanted
        and not p.name.startswith(".")
        and p.is_file()
    )


def require_folder(path: Path, what: str) -> Path:
    """``path`` if it is a folder, else a MissingFileError saying
    ``what`` it should be."""
    if not path.is_dir():
        raise MissingFileError(f"{what} not found: {path}")
    return path


def find_list(
    data_folder: Path, given: Pathlike | None, default: str, what: str
) -> Path:
    """The trial list to use: ``given`` (as a path, else relative to
    ``data_folder``), or ``data_folder/default``.

    Example
    -------
    >>> find_list(Path("/no/corpus"), None, "veri_test2.txt", "Vox1-O")
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.MissingFileError: trial list not found: ...
    """
    if given is None:
        candidates = [data_folder / default]
    else:
        given = Path(given).expanduser()
        candidates = [given, data_folder / given]
    for path in candidates:
        if path.is_file():
            return path.resolve()
    raise MissingFileError(
        f"trial list not found: {candidates[-1]}; give the {what} with "
        "--trials (a path, or a name in the data folder)"
    )


def read_trial_list(path: Path, label_first: bool = True) -> list[TrialLine]:
    """Reads an official trial list as it is.

    Lines are ``label enrol test`` (VoxCeleb, Vietnam-Celeb) or, with
    ``label_first=False``, ``enrol test label`` (CN-Celeb); fields are
    separated by blanks or commas; the label is ``1`` (same speaker) or
    ``0``; blank lines are ignored.

    Returns
    -------
    list of (line_number, label, enrol, test)

    Raises
    ------
    DataError
        At the first line that is not a trial, or if there is none.

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "trials.lst"
    >>> _ = p.write_text("id1-enroll test/id1-a.wav 1\\n\\nx y\\n")
    >>> read_trial_list(p, label_first=False)
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.DataError: .../trials.lst line 3: 'x y' is not ...
    >>> _ = p.write_text("id1-enroll test/id1-a.wav 1\\n")
    >>> read_trial_list(p, label_first=False)
    [(1, 1, 'id1-enroll', 'test/id1-a.wav')]
    """
    rows = []
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.replace(",", " ").split()
        if not fields:
            continue
        if len(fields) == 3:
            label, a, b = (
                fields if label_first else (fields[2], fields[0], fields[1])
            )
            if label in ("0", "1"):
                rows.append((number, int(label), a, b))
                continue
        order = "label enrol test" if label_first else "enrol test label"
        raise DataError(
            f"{path} line {number}: {line.strip()!r} is not a trial "
            f"({order}, label 0 or 1)"
        )
    if not rows:
        raise DataError(f"trial list {path} holds no trial")
    return rows


def official_trials(
    list_file: Path,
    rows: Iterable[TrialLine],
    utt_of: Mapping[str, str],
    where: Callable[[str], str],
) -> list[Trial]:
    """The trials of a list over utterance ids, in the list's order.

    Arguments
    ---------
    list_file : Path
        The trial list (named in the error).
    rows : iterable of (line_number, label, enrol, test)
        What :func:`read_trial_list` read.
    utt_of : mapping
        A file name as the list spells it -> its utterance id, for every
        file the corpus holds.
    where : callable
        A file name as the list spells it -> where it was looked for.

    Raises
    ------
    DataError
        Naming the first file of the list that the corpus lacks.

    Example
    -------
    >>> rows = [(1, 1, "a/1.wav", "a/2.wav"), (2, 0, "a/1.wav", "b/9.wav")]
    >>> utt_of = {"a/1.wav": "a-1", "a/2.wav": "a-2"}
    >>> official_trials(Path("l.txt"), rows[:1], utt_of, str)
    [(1, 'a-1', 'a-2')]
    >>> official_trials(Path("l.txt"), rows, utt_of, lambda k: "/c/" + k)
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.DataError: l.txt line 2 names b/9.wav, which ...
    """
    trials = []
    for number, label, a, b in rows:
        for name in (a, b):
            if name not in utt_of:
                raise DataError(
                    f"{list_file} line {number} names {name}, which is "
                    f"not in the corpus (no {where(name)}); official "
                    "trials are used as they are: restore the file or "
                    "give another list with --trials"
                )
        trials.append((label, utt_of[a], utt_of[b]))
    return trials


def trial_listing(
    found: Sequence[SourceUtterance],
    skipped: Sequence[Skipped],
    trials: list[Trial],
    native_rate: int,
) -> Listing:
    """The listing of a corpus with official trials.

    ``found`` holds every usable file (any split); the files of the
    trials become ``test`` utterances, the files of every other speaker
    ``train`` utterances, and the other files of a trial speaker are left
    out (added to ``skipped``).

    Raises
    ------
    DataError
        When every speaker is a trial speaker.

    Example
    -------
    >>> found = [SourceUtterance("train", u, u[0], f"/c/{u}.wav")
    ...          for u in ("a1", "a2", "b1", "c1")]
    >>> listing = trial_listing(found, [], [(0, "a1", "b1")], 16000)
    >>> [(u.split, u.utt_id) for u in listing.utterances]
    [('train', 'c1'), ('test', 'a1'), ('test', 'b1')]
    >>> [s.utt_id for s in listing.skipped], listing.trials
    (['a2'], [(0, 'a1', 'b1')])
    """
    trial_utts = {u for _, a, b in trials for u in (a, b)}
    by_id = {u.utt_id: u for u in found}
    test_spks = {by_id[u].spk_id for u in trial_utts}
    train, test, left = [], [], list(skipped)
    for u in found:
        if u.utt_id in trial_utts:
            test.append(_with_split(u, "test"))
        elif u.spk_id in test_spks:
            left.append(
                Skipped(u.src, u.utt_id, "test speaker: not in the trials")
            )
        else:
            train.append(_with_split(u, "train"))
    if not train:
        raise DataError(
            "every speaker of the corpus is in the trial list: no "
            "training speaker is left (add training data or give a "
            "smaller list with --trials)"
        )
    logger.info("%d official trials over %d files", len(trials), len(test))
    return Listing(train + test, native_rate, tuple(left), trials=trials)


def prepare_with_trials(
    name: str,
    lister: Callable[..., Listing],
    default_list: str,
    data_folder: Pathlike,
    save_folder: Pathlike,
    options: PrepOptions,
    trials: Pathlike | None,
    **lister_options: Any,
) -> dict[str, Any]:
    """Prepares a corpus listed with its trial list (``--trials``, else
    ``data_folder/default_list``): the list and the ``lister_options``
    are saved in ``options.json`` under ``"corpus"``; returns the
    summary of :func:`~deep_speaker_sb.data.prep.prepare_corpus`."""
    data_folder = Path(data_folder).expanduser().resolve()
    require_folder(data_folder, "data folder")
    list_file = find_list(data_folder, trials, default_list, f"{name} list")
    corpus = {"name": name, "trials": str(list_file), **lister_options}
    lister = functools.partial(lister, trials=list_file, **lister_options)
    return prepare_corpus(data_folder, lister, save_folder, options, corpus)


def _with_split(u: SourceUtterance, split: str) -> SourceUtterance:
    return SourceUtterance(split, u.utt_id, u.spk_id, u.src, u.gender, u.words)
