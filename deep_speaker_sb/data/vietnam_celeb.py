"""Vietnam-Celeb with its E or H trial list.

:func:`list_vietnam_celeb` reads the layout of the released archive::

    root/data/<spk>/<n>.wav          e.g. data/id00001/00001.wav
    root/vietnam-celeb-t.txt         training list: "id00001<TAB>00001.wav"
    root/vietnam-celeb-e.txt         trials (E): "1 id00999/00001.wav ..."
    root/vietnam-celeb-h.txt         trials (H), same format
    root/*.tsv                       speaker metadata (speaker_id, gender)

The trial list (``vietnam-celeb-e.txt`` by default, ``--trials
vietnam-celeb-h.txt`` for H) is used as it is: its files are the test
utterances.  The training utterances are the files of
``vietnam-celeb-t.txt`` (every file of the other speakers when there is
no such list), except those of a trial speaker.  Files that neither list
names are left out (``skipped.csv`` says why), as are training-list
entries without a file.  The utterance id is ``<spk>-<n>``
(``id00001-00001``); the gender comes from the metadata TSV when there is
one.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from speechbrain.utils.logger import get_logger

from deep_speaker_sb.data.corpora import (
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

#: Sample rate of the Vietnam-Celeb recordings.
VIETNAM_CELEB_SAMPLE_RATE = 16000
TRAIN_LIST = "vietnam-celeb-t.txt"
TRIALS_E = "vietnam-celeb-e.txt"
_GENDERS = {"male": "m", "m": "m", "nam": "m", "female": "f", "f": "f"}


def _genders(root: Path) -> dict[str, str]:
    """``{speaker: gender}`` from a metadata TSV of the root, if any."""
    for tsv in sorted(root.glob("*.tsv")):
        with open(tsv, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        if rows and {"speaker_id", "gender"} <= set(rows[0]):
            return {
                r["speaker_id"].strip(): _GENDERS.get(
                    r["gender"].strip().lower(), r["gender"].strip().lower()
                )
                for r in rows
            }
    logger.warning("no speaker metadata TSV in %s: genders unknown", root)
    return {}


def _train_keys(root: Path) -> set[str] | None:
    """``{"<spk>/<file>"}`` of the training list, or None without one."""
    path = root / TRAIN_LIST
    if not path.is_file():
        return None
    keys = set()
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        fields = line.replace("/", "\t").split()
        if len(fields) == 2:
            keys.add(f"{fields[0]}/{fields[1]}")
    return keys


def list_vietnam_celeb(
    data_folder: Pathlike, trials: Pathlike | None = None
) -> Listing:
    """Lists Vietnam-Celeb with an official trial list.

    Arguments
    ---------
    data_folder : Pathlike
        The root holding ``data/`` and the lists.
    trials : Pathlike, optional
        The trial list; ``vietnam-celeb-e.txt`` in the root by default.

    Returns
    -------
    Listing
        Train utterances and the files of the trials (test), with the
        trials.

    Raises
    ------
    MissingFileError, DataError
        A missing folder or list, a malformed list, a file of the list
        that is not in the corpus (the first one is named).

    Example
    -------
    >>> import tempfile, pathlib, numpy, soundfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for key in ("id00001/00001.wav", "id00999/00001.wav",
    ...             "id00999/00002.wav"):
    ...     (root / "data" / key).parent.mkdir(parents=True, exist_ok=True)
    ...     soundfile.write(root / "data" / key, numpy.zeros(800), 16000)
    >>> _ = (root / TRIALS_E).write_text(
    ...     "1 id00999/00001.wav id00999/00002.wav\\n")
    >>> listing = list_vietnam_celeb(root)
    >>> [(u.split, u.utt_id) for u in listing.utterances]
    [('train', 'id00001-00001'), ('test', 'id00999-00001'),
     ('test', 'id00999-00002')]
    """
    root = require_folder(Path(data_folder), "data folder")
    list_file = find_list(root, trials, TRIALS_E, "Vietnam-Celeb E or H list")
    rows = read_trial_list(list_file, label_first=True)
    data = require_folder(root / "data", "Vietnam-Celeb data folder")
    genders = _genders(root)
    train_keys = _train_keys(root)
    trial_keys = {n for _, _, a, b in rows for n in (a, b)}
    found: list[SourceUtterance] = []
    skipped: list[Skipped] = []
    utt_of: dict[str, str] = {}
    seen: set[str] = set()
    allowed = None if train_keys is None else train_keys | trial_keys
    for path in audio_files(data):
        rel = path.relative_to(data)
        key = rel.as_posix()
        utt = safe_id("-".join(rel.with_suffix("").parts))
        if len(rel.parts) != 2:
            reason = "bad path: not data/<spk>/<n>"
        elif utt in seen:
            reason = "duplicate utterance id"
        elif allowed is not None and key not in allowed:
            reason = f"in neither {TRAIN_LIST} nor {list_file.name}"
        else:
            reason = None
        if reason:
            skipped.append(Skipped(str(path), utt, reason))
            continue
        utt_of[key] = utt
        seen.add(utt)
        spk = rel.parts[0]
        found.append(
            SourceUtterance("train", utt, spk, str(path), genders.get(spk), "")
        )
    for key in sorted((train_keys or set()) - set(utt_of)):
        skipped.append(
            Skipped(str(data / key), key, f"in {TRAIN_LIST}: no such file")
        )
    listed = official_trials(list_file, rows, utt_of, lambda k: str(data / k))
    return trial_listing(found, skipped, listed, VIETNAM_CELEB_SAMPLE_RATE)


def prepare_vietnam_celeb(
    data_folder: Pathlike,
    save_folder: Pathlike,
    options: PrepOptions,
    *,
    trials: Pathlike | None = None,
) -> dict[str, Any]:
    """Prepares Vietnam-Celeb with its E (default) or H trials.

    :func:`list_vietnam_celeb` then
    :func:`~deep_speaker_sb.data.prep.prepare_corpus`; returns its
    summary.
    """
    return prepare_with_trials(
        "vietnam_celeb",
        list_vietnam_celeb,
        TRIALS_E,
        data_folder,
        save_folder,
        options,
        trials,
    )
