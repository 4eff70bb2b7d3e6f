"""LibriSpeech: training speakers from some splits, test from others.

:func:`list_librispeech` reads the layout of the OpenSLR archives::

    root/<split>/<spk>/<chapter>/<spk>-<chapter>-<n>.flac
    root/<split>/<spk>/<chapter>/<spk>-<chapter>.trans.txt
    root/SPEAKERS.TXT        "19   | F | train-clean-100 | 25.19 | Kara ..."

The ``train_splits`` (default ``train-clean-100``) give the training
speakers, the ``test_splits`` (default ``test-clean``) the unseen test
speakers; the splits of LibriSpeech have no speaker in common (a test
file of a training speaker would be left out).  The utterance id is the
file's stem (``19-198-0001``), the speaker its first field, the words
come from the chapter's ``.trans.txt`` and the gender from
``SPEAKERS.TXT``.  LibriSpeech has no official speaker trials: they are
drawn over the test utterances, as for VIVOS.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from speechbrain.utils.logger import get_logger

from deep_speaker_sb.data.corpora import audio_files, require_folder
from deep_speaker_sb.data.prep import (
    Listing,
    PrepOptions,
    Skipped,
    SourceUtterance,
    prepare_corpus,
)
from deep_speaker_sb.errors import ConfigError, MissingFileError
from deep_speaker_sb.utils import Pathlike

logger = get_logger(__name__)

#: Sample rate of the LibriSpeech recordings.
LIBRISPEECH_SAMPLE_RATE = 16000
TRAIN_SPLITS = ("train-clean-100",)
TEST_SPLITS = ("test-clean",)


def _genders(root: Path) -> dict[str, str]:
    """``{speaker: "m"|"f"}`` from ``SPEAKERS.TXT`` (``;`` comments)."""
    path = root / "SPEAKERS.TXT"
    if not path.is_file():
        logger.warning("%s not found: genders unknown", path)
        return {}
    genders = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = [f.strip() for f in line.split("|")]
        if line.startswith(";") or len(fields) < 2:
            continue
        genders[fields[0]] = fields[1].lower()
    return genders


def _words(chapter: Path) -> dict[str, str]:
    """``{utterance: text}`` of the chapter's ``*.trans.txt``."""
    words = {}
    for trans in chapter.glob("*.trans.txt"):
        for line in trans.read_text(encoding="utf-8").splitlines():
            utt, _, text = line.strip().partition(" ")
            if utt:
                words[utt] = text.strip()
    return words


def list_librispeech(
    data_folder: Pathlike,
    train_splits: Sequence[str] = TRAIN_SPLITS,
    test_splits: Sequence[str] = TEST_SPLITS,
) -> Listing:
    """Lists LibriSpeech splits as training and test speakers.

    Arguments
    ---------
    data_folder : Pathlike
        The ``LibriSpeech`` folder holding the split folders.
    train_splits, test_splits : sequence of str
        Split folders (``train-clean-100``, ``dev-clean``, ...) of the
        training and of the test speakers.

    Returns
    -------
    Listing
        Train then test utterances, in sorted path order.

    Raises
    ------
    ConfigError
        A split named in both, or no split on a side.
    MissingFileError
        A split folder that is not there (the splits found are named).

    Example
    -------
    >>> import tempfile, pathlib, numpy, soundfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for split, spk in (("train-clean-100", "19"), ("test-clean", "61")):
    ...     chapter = root / split / spk / "198"
    ...     chapter.mkdir(parents=True)
    ...     soundfile.write(chapter / f"{spk}-198-0001.flac",
    ...                     numpy.zeros(800), 16000)
    ...     _ = (chapter / f"{spk}-198.trans.txt").write_text(
    ...         f"{spk}-198-0001 HELLO WORLD\\n")
    >>> _ = (root / "SPEAKERS.TXT").write_text(
    ...     "; ID | SEX | SUBSET\\n19 | F | train-clean-100\\n")
    >>> [(u.split, u.utt_id, u.gender, u.words)
    ...  for u in list_librispeech(root).utterances]
    [('train', '19-198-0001', 'f', 'HELLO WORLD'),
     ('test', '61-198-0001', None, 'HELLO WORLD')]
    """
    root = require_folder(Path(data_folder), "data folder")
    both = sorted(set(train_splits) & set(test_splits))
    if both or not train_splits or not test_splits:
        raise ConfigError(
            "give one split or more for training and for test, none in "
            f"both (got train {list(train_splits)}, test {list(test_splits)})"
        )
    for split in (*train_splits, *test_splits):
        if not (root / split).is_dir():
            found = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise MissingFileError(
                f"LibriSpeech split not found: {root / split} (found: "
                f"{', '.join(found) or 'nothing'})"
            )
    genders = _genders(root)
    utterances: list[SourceUtterance] = []
    skipped: list[Skipped] = []
    train_spks: set[str] = set()
    seen: set[str] = set()
    words: dict[Path, dict[str, str]] = {}
    for side, splits in (("train", train_splits), ("test", test_splits)):
        for split in splits:
            for path in audio_files(root / split):
                utt = path.stem
                spk = utt.split("-")[0]
                if path.parent not in words:
                    words[path.parent] = _words(path.parent)
                reason = None
                if len(utt.split("-")) != 3:
                    reason = "bad utterance id: not <spk>-<chapter>-<n>"
                elif utt in seen:
                    reason = "duplicate utterance id"
                elif side == "test" and spk in train_spks:
                    reason = "test speaker also in train: kept out of test"
                if reason:
                    skipped.append(Skipped(str(path), utt, reason))
                    continue
                seen.add(utt)
                if side == "train":
                    train_spks.add(spk)
                utterances.append(
                    SourceUtterance(
                        side,
                        utt,
                        spk,
                        str(path),
                        gender=genders.get(spk),
                        words=words[path.parent].get(utt),
                    )
                )
    return Listing(utterances, LIBRISPEECH_SAMPLE_RATE, tuple(skipped))


def prepare_librispeech(
    data_folder: Pathlike,
    save_folder: Pathlike,
    options: PrepOptions,
    *,
    train_splits: Sequence[str] = TRAIN_SPLITS,
    test_splits: Sequence[str] = TEST_SPLITS,
) -> dict[str, Any]:
    """Prepares LibriSpeech splits for speaker verification.

    :func:`list_librispeech` then
    :func:`~deep_speaker_sb.data.prep.prepare_corpus`; returns its
    summary.
    """
    require_folder(Path(data_folder).expanduser(), "data folder")
    lister = functools.partial(
        list_librispeech,
        train_splits=tuple(train_splits),
        test_splits=tuple(test_splits),
    )
    corpus = {
        "name": "librispeech",
        "train_splits": list(train_splits),
        "test_splits": list(test_splits),
    }
    return prepare_corpus(data_folder, lister, save_folder, options, corpus)
