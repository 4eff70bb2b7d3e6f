"""Your own recordings, one folder per speaker (``--corpus folders``).

:func:`list_folders` lists::

    root/<speaker>/**/*.{wav,flac}      # any depth, rate and channels

The speaker is the top-level folder; the utterance id is the speaker and
the file's path below it joined by ``-``, without the suffix (characters
other than letters, digits, ``.``, ``-`` and ``_`` become ``_``:
``Anna/day 1/a.wav`` is ``Anna-day_1-a`` of speaker ``Anna``).  The
unseen test speakers are chosen by one of:

- ``test_speakers``: a file of speaker ids (one a line), or a count ``N``
  (``N`` speakers drawn with ``seed``: the same ones on every run);
- ``test_folder``: a second root in the same layout.

Trials are drawn over the test utterances, as for VIVOS.  There is no
gender or transcript: the manifests say ``unknown`` and no words.
"""

from __future__ import annotations

import functools
import random
from pathlib import Path
from typing import Any

from speechbrain.utils.logger import get_logger

from deep_speaker_sb.data.corpora import (
    audio_files,
    require_folder,
    safe_id,
)
from deep_speaker_sb.data.prep import (
    Listing,
    PrepOptions,
    Skipped,
    SourceUtterance,
    prepare_corpus,
)
from deep_speaker_sb.errors import ConfigError, DataError, MissingFileError
from deep_speaker_sb.utils import Pathlike

logger = get_logger(__name__)

#: Counted as the "native" rate in the summary (any rate is converted).
FOLDERS_SAMPLE_RATE = 16000


def _speaker_folders(root: Path) -> dict[str, Path]:
    """``{speaker folder name: folder}`` of a root."""
    return {
        d.name: d
        for d in sorted(root.iterdir())
        if d.is_dir() and not d.name.startswith(".")
    }


def _choose_test(
    speakers: list[str], test_speakers: Pathlike | int, seed: int
) -> set[str]:
    """The test speakers: those listed in a file, or a seeded draw."""
    if isinstance(test_speakers, int) or str(test_speakers).isdigit():
        n = int(test_speakers)
        if not 2 <= n < len(speakers):
            raise ConfigError(
                f"--test_speakers {n}: give a count between 2 (a trial "
                f"pairs two speakers) and {len(speakers) - 1} "
                f"({len(speakers)} speakers found)"
            )
        return set(random.Random(seed).sample(sorted(speakers), n))
    path = Path(test_speakers).expanduser()
    if not path.is_file():
        raise MissingFileError(
            f"test speaker list not found: {path} (give a file of speaker "
            "ids, one a line, or a count)"
        )
    wanted = {
        line.strip()
        for line in path.read_text(encoding="utf-8-sig").splitlines()
        if line.strip()
    }
    unknown = sorted(wanted - set(speakers))
    if unknown:
        raise DataError(
            f"{path} names speaker {unknown[0]}, which has no folder "
            f"({len(unknown)} unknown in all)"
        )
    if len(wanted) < 2 or wanted == set(speakers):
        raise DataError(
            f"{path} must name two speakers or more (a trial pairs two "
            "speakers), not all of them: the others are the training "
            "speakers"
        )
    return wanted


def list_folders(
    data_folder: Pathlike,
    test_speakers: Pathlike | int | None = None,
    test_folder: Pathlike | None = None,
    seed: int = PrepOptions.seed,
) -> Listing:
    """Lists recordings laid out one folder per speaker.

    Arguments
    ---------
    data_folder : Pathlike
        The root: one folder per speaker, audio files at any depth.
    test_speakers : Pathlike or int, optional
        A file of test speaker ids (one a line), or how many speakers to
        draw as test speakers.
    test_folder : Pathlike, optional
        A second root (same layout) holding the test speakers.
    seed : int
        Seed of the draw of ``test_speakers`` speakers.

    Returns
    -------
    Listing
        Train then test utterances, in sorted path order.

    Raises
    ------
    ConfigError
        Unless exactly one of ``test_speakers`` and ``test_folder`` is
        given.
    MissingFileError, DataError
        A missing folder or list, an unknown speaker in the list.

    Example
    -------
    >>> import tempfile, pathlib, numpy, soundfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("Anna/s1/a.wav", "Anna/b.flac", "Bob/a.wav",
    ...              "Cleo/a.wav"):
    ...     (root / name).parent.mkdir(parents=True, exist_ok=True)
    ...     soundfile.write(root / name, numpy.zeros(800), 8000)
    >>> listing = list_folders(root, test_speakers=2, seed=0)
    >>> [(u.split, u.spk_id, u.utt_id) for u in listing.utterances]
    [('train', 'Anna', 'Anna-b'), ('train', 'Anna', 'Anna-s1-a'),
     ('test', 'Bob', 'Bob-a'), ('test', 'Cleo', 'Cleo-a')]
    """
    if (test_speakers is None) == (test_folder is None):
        raise ConfigError(
            "the folders corpus needs its test speakers: give either "
            "--test_speakers (a file of ids, or a count) or --test_folder"
        )
    root = require_folder(Path(data_folder), "data folder")
    found = {"train": _speaker_folders(root)}
    if test_folder is not None:
        test_root = Path(test_folder).expanduser().resolve()
        test_root = require_folder(test_root, "test folder")
        found["test"] = _speaker_folders(test_root)
    else:
        chosen = _choose_test(sorted(found["train"]), test_speakers, seed)
        found["test"] = {s: found["train"].pop(s) for s in sorted(chosen)}
    utterances: list[SourceUtterance] = []
    skipped: list[Skipped] = []
    seen: dict[str, str] = {}
    for split, speakers in found.items():
        for folder, spk_dir in speakers.items():
            spk = safe_id(folder)
            for path in audio_files(spk_dir):
                rel = path.relative_to(spk_dir)
                utt = safe_id("-".join((folder, *rel.with_suffix("").parts)))
                reason = None
                if split == "test" and folder in found["train"]:
                    reason = "test speaker also in train: kept out of test"
                elif utt in seen:
                    reason = f"duplicate utterance id: also {seen[utt]}"
                if reason:
                    skipped.append(Skipped(str(path), utt, reason))
                    continue
                seen[utt] = str(path)
                utterances.append(
                    SourceUtterance(split, utt, spk, str(path), "unknown", "")
                )
    logger.info(
        "%d train and %d test speakers",
        len(found["train"]),
        len(found["test"]),
    )
    return Listing(utterances, FOLDERS_SAMPLE_RATE, tuple(skipped))


def prepare_folders(
    data_folder: Pathlike,
    save_folder: Pathlike,
    options: PrepOptions,
    *,
    test_speakers: Pathlike | int | None = None,
    test_folder: Pathlike | None = None,
) -> dict[str, Any]:
    """Prepares recordings laid out one folder per speaker.

    :func:`list_folders` (with ``options.seed``) then
    :func:`~deep_speaker_sb.data.prep.prepare_corpus`; returns its
    summary.
    """
    require_folder(Path(data_folder).expanduser(), "data folder")
    spec = str(test_speakers) if test_speakers is not None else None
    if spec is not None and not spec.isdigit():
        spec = str(Path(spec).expanduser().resolve())
    test_root = (
        None
        if test_folder is None
        else str(Path(test_folder).expanduser().resolve())
    )
    lister = functools.partial(
        list_folders,
        test_speakers=spec,
        test_folder=test_root,
        seed=options.seed,
    )
    corpus = {
        "name": "folders",
        "test_speakers": spec,
        "test_folder": test_root,
    }
    return prepare_corpus(data_folder, lister, save_folder, options, corpus)
