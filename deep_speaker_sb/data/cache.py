"""The WAV cache of the preparation, and the errors writing outputs.

The converted, trimmed utterances are cached as
``wavs/<split>/<SPK>/<UTT>.wav`` (PCM-16, :func:`wav_relpath`), each
written atomically (:func:`write_wav`).  A cached WAV is reused when it
is newer than its source and the audio options did not change
(``wavs/.audio_options.json``, :func:`reset_cache_if_stale`); the WAVs of
no kept utterance are removed (:func:`remove_orphans`), and a prepared
folder whose manifests name a missing WAV is prepared again
(:func:`cache_complete`).  :func:`writing` turns an error writing any
output of the preparation (disk full, no permission) into one
:class:`~deep_speaker_sb.errors.OutputError`.

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

import contextlib
import csv
import errno
import json
import os
import shutil
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from speechbrain.utils.logger import get_logger

from deep_speaker_sb.data.inputs import SourceUtterance
from deep_speaker_sb.dataio import resolve_wav
from deep_speaker_sb.errors import ConfigError, OutputError, UserError
from deep_speaker_sb.utils import Pathlike, write_json

logger = get_logger(__name__)

#: The folder of the cached WAVs in the save folder.
WAV_FOLDER = "wavs"
#: What the cached WAVs were made with, in :data:`WAV_FOLDER`.
AUDIO_OPTIONS_FILE = ".audio_options.json"


def wav_relpath(u: SourceUtterance) -> str:
    """Where the cached WAV of ``u`` lies in the save folder."""
    return f"{WAV_FOLDER}/{u.split}/{u.spk_id}/{u.utt_id}.wav"


@contextlib.contextmanager
def writing(path: Pathlike) -> Iterator[None]:
    """Turns an OS error writing the output ``path`` into an OutputError.

    Example
    -------
    >>> with writing("/full/disk/a.wav"):
    ...     raise OSError(errno.ENOSPC, "No space left on device")
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.OutputError: cannot write /full/disk/a.wav: ...
    """
    try:
        yield
    except UserError:
        raise
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0)
        why = exc.strerror or str(exc) or type(exc).__name__
        raise OutputError(
            f"cannot write {path}: {why}"
            + (f" [{code}]" if code else "")
            + "; free space or fix the permissions, then run the "
            "preparation again (it redoes what is missing)"
        ) from exc


def write_wav(path: str, y: np.ndarray, sample_rate: int) -> None:
    """Writes PCM-16 mono WAV atomically (temporary name, then rename).

    The standard ``wave`` module is used because libsndfile syncs each file
    to disk on close, which costs more than all the rest of the work.
    """
    pcm = np.clip(np.rint(y * 32768.0), -32768, 32767).astype("<i2")
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with wave.open(tmp, "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(sample_rate)
            w.writeframes(pcm.tobytes())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def reset_cache_if_stale(wav_root: Path, audio_options: dict) -> None:
    """Empties the WAV cache unless it was made with ``audio_options``.

    The options are recorded *before* any WAV is written; since each WAV
    is written atomically, every WAV under a matching record is complete
    and an interrupted preparation reuses them.
    """
    record = wav_root / AUDIO_OPTIONS_FILE
    try:
        same = json.loads(record.read_text(encoding="utf-8")) == audio_options
    except (OSError, ValueError):
        same = False
    if same:
        return
    if not record.is_file() and wav_root.is_dir() and any(wav_root.iterdir()):
        raise ConfigError(
            f"{wav_root} exists but was not made by the data preparation; "
            "choose another prepared folder (--prep_folder)"
        )
    if wav_root.exists():
        logger.info("audio options changed: emptying %s", wav_root)
        shutil.rmtree(wav_root)
    write_json(record, audio_options)


def remove_orphans(wav_root: Path, keep: set[str]) -> None:
    """Removes cached WAVs (and temporary files) of no kept utterance."""
    removed = 0
    for folder, _dirs, names in os.walk(wav_root, topdown=False):
        for name in names:
            path = os.path.join(folder, name)
            if name == AUDIO_OPTIONS_FILE or path in keep:
                continue
            os.remove(path)
            removed += 1
        if folder != str(wav_root) and not os.listdir(folder):
            os.rmdir(folder)
    if removed:
        logger.info("removed %d stale files from %s", removed, wav_root)


def cache_complete(save_folder: Path, files: dict[str, Path]) -> bool:
    """Whether every cached WAV that the manifests name exists.

    One ``stat`` per distinct file; logs the missing ones (an unreadable
    manifest counts as incomplete too).
    """
    wavs: set[str] = set()
    for name in ("train.csv", "valid.csv", "test.csv"):
        try:
            with open(files[name], newline="", encoding="utf-8") as f:
                wavs.update(r.get("wav") or "" for r in csv.DictReader(f))
        except (OSError, ValueError, csv.Error) as exc:
            logger.warning("%s unreadable (%s): preparing again", name, exc)
            return False
    missing = sorted(
        w for w in wavs if not os.path.isfile(resolve_wav(w, save_folder))
    )
    if missing:
        shown = ", ".join(resolve_wav(w, save_folder) for w in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        logger.warning(
            "%d cached WAVs named by the manifests are missing (%s%s): "
            "preparing again",
            len(missing),
            shown,
            more,
        )
    return not missing
