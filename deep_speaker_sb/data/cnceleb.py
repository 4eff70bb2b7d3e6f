"""CN-Celeb1 (with its evaluation lists) and CN-Celeb2.

:func:`list_cnceleb` reads the layout of the ``CN-Celeb_flac`` release
(``CN-Celeb_wav``, with ``.wav`` files, is read the same way)::

    root/data/<spk>/<genre>-<session>-<n>.flac   training speakers
    root/eval/enroll/<spk>-enroll.flac           one enrolment per speaker
    root/eval/test/<spk>-<genre>-<session>-<n>.flac
    root/eval/lists/enroll.lst
        id00800-enroll enroll/id00800-enroll.wav
    root/eval/lists/trials.lst
        id00800-enroll test/id00800-singing-01-005.wav 1

and, optionally, more training data in the same ``data/`` layout
(CN-Celeb2: ``CN-Celeb2_flac/data/<spk>/...``).  The lists name ``.wav``
files; the file with the same name and either suffix is used.

The trials are ``trials.lst`` as it is: enrolment ``id00800-enroll`` is
the utterance ``id00800-enroll`` (its file from ``enroll.lst``, else
``eval/enroll/id00800-enroll.*``), test ``test/id00800-singing-01-005.wav``
the utterance ``id00800-singing-01-005`` of speaker ``id00800``.  Every
speaker of the lists is a test speaker and kept out of training (its
``data/`` files are left out); the others are training speakers, with
utterance ids ``<spk>-<genre>-<session>-<n>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from speechbrain.utils.logger import get_logger

from deep_speaker_sb.data.corpora import (
    AUDIO_SUFFIXES,
    audio_files,
    find_list,
    official_trials,
    prepare_with_trials,
    read_trial_list,
    require_folder,
    safe_id,
    trial_listing,
)
from deep_speaker_sb.data.prep import (
    Listing,
    PrepOptions,
    Skipped,
    SourceUtterance,
)
from deep_speaker_sb.utils import Pathlike

logger = get_logger(__name__)

#: Sample rate of the CN-Celeb recordings.
CNCELEB_SAMPLE_RATE = 16000
#: The official lists, relative to the root.
TRIALS_LST = "eval/lists/trials.lst"
ENROLL_LST = "eval/lists/enroll.lst"


def _existing(eval_dir: Path, name: str) -> Path | None:
    """``eval_dir/name``, with any audio suffix, if it exists."""
    base = eval_dir / name
    for path in (base, *(base.with_suffix(s) for s in AUDIO_SUFFIXES)):
        if path.is_file():
            return path
    return None


def _enrol_files(root: Path) -> dict[str, str]:
    """``{enrol id: path relative to eval/}`` from ``enroll.lst``."""
    lst = root / ENROLL_LST
    if not lst.is_file():
        return {}
    table = {}
    for line in lst.read_text(encoding="utf-8-sig").splitlines():
        fields = line.split()
        if len(fields) >= 2:
            table[fields[0]] = fields[1]
    return table


def list_cnceleb(
    data_folder: Pathlike,
    trials: Pathlike | None = None,
    train_folders: Sequence[Pathlike] = (),
) -> Listing:
    """Lists CN-Celeb1 (and more training data) with its trials.

    Arguments
    ---------
    data_folder : Pathlike
        The CN-Celeb1 root, holding ``data/`` and ``eval/``.
    trials : Pathlike, optional
        The trial list; ``eval/lists/trials.lst`` by default.
    train_folders : sequence of Pathlike
        More roots whose ``data/<spk>/`` files are training data
        (CN-Celeb2).

    Returns
    -------
    Listing
        Train utterances, then the enrolment and test files of the trials
        (test), with the trials.

    Raises
    ------
    MissingFileError, DataError
        A missing folder or list, a malformed list, a file of the list
        that is not in the corpus (the first one is named).

    Example
    -------
    >>> import tempfile, pathlib, numpy, soundfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("data/id00000/speech-01-001.flac",
    ...              "eval/enroll/id00800-enroll.flac",
    ...              "eval/test/id00800-vlog-01-002.flac"):
    ...     (root / name).parent.mkdir(parents=True, exist_ok=True)
    ...     soundfile.write(root / name, numpy.zeros(800), 16000)
    >>> (root / "eval/lists").mkdir()
    >>> _ = (root / TRIALS_LST).write_text(
    ...     "id00800-enroll test/id00800-vlog-01-002.wav 1\\n")
    >>> listing = list_cnceleb(root)
    >>> [(u.split, u.spk_id, u.utt_id) for u in listing.utterances]
    [('train', 'id00000', 'id00000-speech-01-001'),
     ('test', 'id00800', 'id00800-enroll'),
     ('test', 'id00800', 'id00800-vlog-01-002')]
    >>> listing.trials
    [(1, 'id00800-enroll', 'id00800-vlog-01-002')]
    """
    root = require_folder(Path(data_folder), "data folder")
    list_file = find_list(root, trials, TRIALS_LST, "CN-Celeb trials.lst")
    rows = read_trial_list(list_file, label_first=False)
    eval_dir = root / "eval"
    enrol_files = _enrol_files(root)
    test: dict[str, SourceUtterance] = {}
    utt_of: dict[str, str] = {}
    for name in sorted({n for _, _, a, b in rows for n in (a, b)}):
        rel = enrol_files.get(name, name)
        if "/" not in rel:  # an enrolment id missing from enroll.lst
            rel = f"enroll/{rel}"
        path = _existing(eval_dir, rel)
        if path is None:
            continue  # official_trials names the first one missing
        utt = safe_id(path.stem)
        spk = utt.split("-")[0]
        utt_of[name] = utt
        test[utt] = SourceUtterance("test", utt, spk, str(path), "unknown", "")
    listed = official_trials(
        list_file,
        rows,
        utt_of,
        lambda n: f"{eval_dir / enrol_files.get(n, n)} (.flac or .wav)",
    )
    test_spks = {u.spk_id for u in test.values()}
    train: list[SourceUtterance] = []
    skipped: list[Skipped] = []
    seen: set[str] = set()
    for source in (root, *map(Path, train_folders)):
        data = require_folder(source / "data", "CN-Celeb data folder")
        for path in audio_files(data):
            rel = path.relative_to(data)
            spk = safe_id(rel.parts[0])
            utt = safe_id("-".join(rel.with_suffix("").parts))
            if len(rel.parts) < 2:
                reason = "bad path: not data/<spk>/<file>"
            elif spk in test_spks:
                reason = "test speaker: not in the trials"
            elif utt in test or utt in seen:
                reason = "duplicate utterance id"
            else:
                reason = None
            if reason:
                skipped.append(Skipped(str(path), utt, reason))
                continue
            seen.add(utt)
            train.append(
                SourceUtterance("train", utt, spk, str(path), "unknown", "")
            )
    found = [*train, *test.values()]
    return trial_listing(found, skipped, listed, CNCELEB_SAMPLE_RATE)


def prepare_cnceleb(
    data_folder: Pathlike,
    save_folder: Pathlike,
    options: PrepOptions,
    *,
    trials: Pathlike | None = None,
    train_folders: Sequence[Pathlike] = (),
) -> dict[str, Any]:
    """Prepares CN-Celeb with its official trials.

    :func:`list_cnceleb` then
    :func:`~deep_speaker_sb.data.prep.prepare_corpus`; returns its
    summary.
    """
    return prepare_with_trials(
        "cnceleb",
        list_cnceleb,
        TRIALS_LST,
        data_folder,
        save_folder,
        options,
        trials,
        train_folders=[
            str(Path(f).expanduser().resolve()) for f in train_folders
        ],
    )
