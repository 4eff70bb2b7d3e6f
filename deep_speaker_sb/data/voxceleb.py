"""VoxCeleb1 (and VoxCeleb2 dev) with an official trial list.

:func:`list_voxceleb` reads the folders as distributed, under one root
(every one it finds)::

    root/vox1_dev_wav/wav/<id>/<video>/<n>.wav     VoxCeleb1 dev
    root/vox1_test_wav/wav/<id>/<video>/<n>.wav    VoxCeleb1 test
    root/wav/<id>/<video>/<n>.wav                  or both in one wav/
    root/vox2_dev_aac/dev/aac/<id>/<video>/<n>.m4a VoxCeleb2 dev
    root/dev/aac/<id>/<video>/<n>.m4a              (either place)
    root/veri_test2.txt                            the trial list
    root/vox1_meta.csv, root/vox2_meta.csv         genders (optional)

The trial list is used as it is: ``veri_test2.txt`` (Vox1-O, cleaned) by
default, or any list in the same format (``list_test_all2.txt``,
VoxCeleb1-E; ``list_test_hard2.txt``, VoxCeleb1-H), lines ``label enrol
test`` with paths like ``id10270/5r0dWxy17C8/00001.wav``.  The files of
the list are the test utterances; every speaker not in the list is a
training speaker (the other files of a test speaker are left out).  With
the E or H list every VoxCeleb1 speaker is a test speaker, so training
needs VoxCeleb2.

The utterance id is ``<id>-<video>-<n>`` (``id10270-5r0dWxy17C8-00001``).
VoxCeleb2's AAC (``.m4a``) files are decoded by ``ffmpeg``, which must be
on ``PATH`` (a clear error says so otherwise); VoxCeleb2 converted to WAV
under the same folders is read as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from speechbrain.utils.logger import get_logger

from deep_speaker_sb.data.convert import FFMPEG_SUFFIXES, require_ffmpeg
from deep_speaker_sb.data.corpora import (
    audio_files,
    find_list,
    official_trials,
    prepare_with_trials,
    read_trial_list,
    require_folder,
    trial_listing,
)
from deep_speaker_sb.data.prep import (
    Listing,
    PrepOptions,
    Skipped,
    SourceUtterance,
)
from deep_speaker_sb.errors import DataError
from deep_speaker_sb.utils import Pathlike

logger = get_logger(__name__)

#: Sample rate of the VoxCeleb recordings.
VOXCELEB_SAMPLE_RATE = 16000
#: The default trial list (Vox1-O, cleaned), in the data folder.
VOX1_O = "veri_test2.txt"
#: The speaker metadata (gender), when they are in the root.
VOX1_META = "vox1_meta.csv"
VOX2_META = "vox2_meta.csv"
#: Where VoxCeleb1 and VoxCeleb2 lie under the root, as distributed.
VOX1_FOLDERS = ("wav", "vox1_dev_wav/wav", "vox1_test_wav/wav")
VOX2_FOLDERS = ("dev/aac", "vox2_dev_aac/dev/aac")


def _sources(root: Path) -> list[Path]:
    """The VoxCeleb folders found under ``root``."""
    found = [
        root / sub
        for sub in (*VOX1_FOLDERS, *VOX2_FOLDERS)
        if (root / sub).is_dir()
    ]
    if not found:
        raise DataError(
            f"{root} holds no VoxCeleb folder: expected "
            + ", ".join(f"{s}/" for s in (*VOX1_FOLDERS, *VOX2_FOLDERS))
        )
    return found


def _genders(meta: Path) -> dict[str, str]:
    """``{speaker: "m"|"f"}`` of a VoxCeleb meta file, if there is one.

    ``vox1_meta.csv`` is tab-separated, ``vox2_meta.csv`` comma-separated;
    the speaker is the first column, the gender the ``Gender`` column.

    Example
    -------
    >>> import tempfile, pathlib
    >>> meta = pathlib.Path(tempfile.mkdtemp()) / VOX2_META
    >>> _ = meta.write_text("VoxCeleb2 ID ,VGGFace2 ID ,Gender ,Set \\n"
    ...                     "id00012 ,n000012 ,m ,dev \\n")
    >>> _genders(meta)
    {'id00012': 'm'}
    """
    if not meta.is_file():
        return {}
    lines = meta.read_text(encoding="utf-8-sig").splitlines()
    sep = "\t" if lines and "\t" in lines[0] else ","
    header = [f.strip().lower() for f in lines[0].split(sep)] if lines else []
    if "gender" not in header:
        logger.warning("%s has no Gender column: genders unknown", meta)
        return {}
    col = header.index("gender")
    rows = [[f.strip() for f in line.split(sep)] for line in lines[1:]]
    return {r[0]: r[col].lower() for r in rows if len(r) > col and r[0]}


def list_voxceleb(
    data_folder: Pathlike, trials: Pathlike | None = None
) -> Listing:
    """Lists VoxCeleb1/2 with an official trial list.

    Arguments
    ---------
    data_folder : Pathlike
        The root holding the VoxCeleb folders (see the module).
    trials : Pathlike, optional
        The trial list; ``data_folder/veri_test2.txt`` by default.

    Returns
    -------
    Listing
        Train utterances (speakers not in the list) and test utterances
        (the files of the list), with the list's trials.

    Raises
    ------
    DataError
        No VoxCeleb folder, a malformed list, a file of the list that is
        not in the corpus (the first one is named), or no training
        speaker left.
    ConfigError
        VoxCeleb2 ``.m4a`` files and no ``ffmpeg`` on ``PATH``.

    Example
    -------
    >>> import tempfile, pathlib, numpy, soundfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for key in ("id10001/v1/00001.wav", "id10270/v1/00001.wav",
    ...             "id10270/v2/00002.wav"):
    ...     path = root / "wav" / key
    ...     path.parent.mkdir(parents=True, exist_ok=True)
    ...     soundfile.write(path, numpy.zeros(800), 16000)
    >>> _ = (root / "veri_test2.txt").write_text(
    ...     "1 id10270/v1/00001.wav id10270/v2/00002.wav\\n")
    >>> listing = list_voxceleb(root)
    >>> [(u.split, u.utt_id) for u in listing.utterances]
    [('train', 'id10001-v1-00001'), ('test', 'id10270-v1-00001'),
     ('test', 'id10270-v2-00002')]
    >>> listing.trials
    [(1, 'id10270-v1-00001', 'id10270-v2-00002')]
    """
    root = require_folder(Path(data_folder), "data folder")
    list_file = find_list(root, trials, VOX1_O, "Vox1-O, E or H trial list")
    rows = read_trial_list(list_file, label_first=True)
    sources = _sources(root)
    genders = {**_genders(root / VOX1_META), **_genders(root / VOX2_META)}
    found: list[SourceUtterance] = []
    skipped: list[Skipped] = []
    utt_of: dict[str, str] = {}
    seen: set[str] = set()
    decoded = False
    for source in sources:
        suffixes = (".wav", *FFMPEG_SUFFIXES)
        for path in audio_files(source, suffixes):
            rel = path.relative_to(source)
            key = rel.as_posix()
            if len(rel.parts) != 3:
                skipped.append(
                    Skipped(str(path), key, "bad path: not <id>/<video>/<n>")
                )
                continue
            utt = "-".join(rel.with_suffix("").parts)
            if utt in seen:
                skipped.append(
                    Skipped(str(path), utt, "duplicate utterance id")
                )
                continue
            seen.add(utt)
            decoded |= path.suffix.lower() in FFMPEG_SUFFIXES
            utt_of[key] = utt
            found.append(
                SourceUtterance(
                    "train",
                    utt,
                    rel.parts[0],
                    str(path),
                    genders.get(rel.parts[0], "unknown"),
                    "",
                )
            )
    if decoded:
        require_ffmpeg("VoxCeleb2's .m4a files (dev/aac)")
    where = " or ".join(str(s) for s in sources)
    listed = official_trials(
        list_file, rows, utt_of, lambda k: f"{k} under {where}"
    )
    return trial_listing(found, skipped, listed, VOXCELEB_SAMPLE_RATE)


def prepare_voxceleb(
    data_folder: Pathlike,
    save_folder: Pathlike,
    options: PrepOptions,
    *,
    trials: Pathlike | None = None,
) -> dict[str, Any]:
    """Prepares VoxCeleb with an official trial list.

    :func:`list_voxceleb` then
    :func:`~deep_speaker_sb.data.prep.prepare_corpus`; returns its
    summary.
    """
    return prepare_with_trials(
        "voxceleb",
        list_voxceleb,
        VOX1_O,
        data_folder,
        save_folder,
        options,
        trials,
    )
