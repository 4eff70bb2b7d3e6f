"""The corpus-neutral data preparation: listing -> WAV cache -> manifests.

A corpus module lists its utterances (a :class:`Listing`: one
:class:`SourceUtterance` per input file, plus the inputs it already had to
leave out, as :class:`Skipped`); :func:`prepare_corpus` does the rest, the
same way for every corpus:

1. **convert and trim**: every source file is read, mixed down to mono,
   resampled to ``sample_rate`` (:func:`deep_speaker_sb.dsp.resample`),
   trimmed of leading and trailing silence
   (:func:`deep_speaker_sb.dsp.trim_silence`) and cached as
   ``wavs/<split>/<SPK>/<UTT>.wav`` (PCM-16), by a pool of worker
   processes; unreadable, empty or silent inputs and utterances shorter
   than ``min_dur`` after trimming are skipped with their reason;
2. **split** the ``train`` utterances per speaker into train and valid
   (:func:`split_train_valid`);
3. **write** ``train.csv``, ``valid.csv`` and ``test.csv`` (one
   :class:`~deep_speaker_sb.dataio.SegmentRow` per segment,
   :func:`segment_rows`), ``trials.txt`` (balanced trials over the
   ``test`` utterances) and ``skipped.csv`` (every input left out, why);
4. **summarise** into ``prep_summary.json``, then save ``options.json``
   (the skip rule of :mod:`deep_speaker_sb.utils`).

A cached WAV is reused when it is newer than its source and the audio
options did not change (``wavs/.audio_options.json``); every file is
written atomically, so an interrupted preparation is simply run again
(and removes the temporary files the interrupted one left).
Only a bad *input* is skipped: an error writing an output (disk full, no
permission) stops the preparation with an
:class:`~deep_speaker_sb.errors.OutputError` before ``options.json`` is
saved, and a skipped run first checks that every cached WAV the manifests
name still exists (and prepares again when one is missing).

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

import contextlib
import csv
import errno
import functools
import glob
import json
import math
import multiprocessing
import os
import random
import shutil
import subprocess
import time
import wave
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import soundfile as sf
from speechbrain.utils.logger import get_logger
from tqdm import tqdm

from deep_speaker_sb.data.trials import Trial, make_trials
from deep_speaker_sb.dataio import (
    DATA_ROOT,
    SegmentRow,
    resolve_wav,
    write_manifest,
)
from deep_speaker_sb.dsp import (
    SILENCE_DBFS,
    resample,
    segment_bounds,
    trim_silence,
)
from deep_speaker_sb.errors import (
    ConfigError,
    DataError,
    OutputError,
    UserError,
)
from deep_speaker_sb.utils import (
    OPTIONS_FILE,
    Pathlike,
    atomic_write,
    outputs_up_to_date,
    save_options,
    write_json,
)

logger = get_logger(__name__)

#: Default number of trials in ``trials.txt`` (half target, half not).
DEFAULT_NUM_TRIALS = 10000
#: Bumped when the outputs change for the same options.
PREP_VERSION = 1
#: The splits of a listing: ``train`` speakers (split again into train
#: and valid) and unseen ``test`` speakers (the trials).
SPLITS = ("train", "test")
#: Columns of ``skipped.csv``.
SKIPPED_FIELDS = ("path", "utt_id", "reason")
#: The files of the save folder besides the WAV cache.
OUTPUT_FILES = (
    "train.csv",
    "valid.csv",
    "test.csv",
    "trials.txt",
    "skipped.csv",
    "prep_summary.json",
)

#: Inputs decoded by ffmpeg (libsndfile does not read AAC).
FFMPEG_SUFFIXES = (".m4a", ".aac")

_WAVS = "wavs"
_AUDIO_OPTIONS_FILE = ".audio_options.json"

_U = TypeVar("_U")


# --------------------------------------------------------------------------
# What a corpus listing gives the core
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceUtterance:
    """One input utterance of a corpus, as its listing step found it.

    Arguments
    ---------
    split : str
        ``"train"`` (a training speaker's) or ``"test"`` (an unseen
        speaker's, for the trials).
    utt_id : str
        Unique over the corpus; names the cached WAV and the segments.
    spk_id : str
        The speaker.
    src : str
        The source audio file (any format libsndfile reads).
    gender : str, optional
        ``None`` when the corpus should give it but does not: kept as
        ``"unknown"`` and counted in the summary.
    words : str, optional
        The transcript; ``None`` when the corpus should give it but does
        not: kept empty and counted in the summary.  A corpus without
        transcripts gives ``""``.
    """

    split: str
    utt_id: str
    spk_id: str
    src: str
    gender: str | None = None
    words: str | None = None


@dataclass(frozen=True)
class Skipped:
    """An input left out, and why (a row of ``skipped.csv``).

    The part of ``reason`` before its first ``:`` is what the summary
    counts (``"unreadable: <details>"``).
    """

    path: str
    utt_id: str
    reason: str


@dataclass(frozen=True)
class Listing:
    """The utterances of a corpus (step 1, the corpus-specific step).

    Arguments
    ---------
    utterances : sequence of SourceUtterance
        The inputs to prepare, in a fixed order (sorted paths).
    native_rate : int
        The corpus's usual sample rate: kept inputs at another rate are
        counted as ``converted.other_sample_rate`` in the summary.
    skipped : sequence of Skipped
        The inputs the listing already left out (bad names, ...).
    trials : sequence of (label, enrol_utt, test_utt), optional
        The corpus's official trials over ``test`` utterance ids, written
        to ``trials.txt`` as they are (``num_trials`` is then unused; a
        trial whose file was skipped is dropped, with a warning); ``None``:
        balanced trials are drawn (:func:`make_trials`).

    Example
    -------
    >>> u = SourceUtterance("train", "S1_U1", "S1", "/c/S1/U1.flac", "f", "")
    >>> Listing([u], native_rate=16000).utterances[0].spk_id
    'S1'
    >>> Listing([u, u], native_rate=16000)
    Traceback (most recent call last):
    ...
    ValueError: utterance id S1_U1 is listed twice; ...
    """

    utterances: Sequence[SourceUtterance]
    native_rate: int
    skipped: Sequence[Skipped] = ()
    trials: Sequence[Trial] | None = None

    def __post_init__(self) -> None:
        seen: set[str] = set()
        test: set[str] = set()
        for u in self.utterances:
            if u.split == "test":
                test.add(u.utt_id)
            if u.split not in SPLITS:
                raise ValueError(
                    f"utterance {u.utt_id}: split {u.split!r} is not one "
                    f"of {SPLITS}; a listing must say train or test"
                )
            if u.utt_id in seen:
                raise ValueError(
                    f"utterance id {u.utt_id} is listed twice; a listing "
                    "must skip duplicates (they share one cached WAV)"
                )
            seen.add(u.utt_id)
        for _, enrol, probe in self.trials or ():
            for utt in (enrol, probe):
                if utt not in test:
                    raise ValueError(
                        f"official trial names {utt}, which is not a test "
                        "utterance of the listing"
                    )


@dataclass(frozen=True)
class PrepOptions:
    """The options of :func:`prepare_corpus` (checked when made).

    Arguments
    ---------
    sample_rate : int
        Sample rate of the cached WAVs.
    seg_dur : float
        Longest segment of a manifest row, in seconds.
    min_dur : float
        Shortest segment kept (a shorter tail is dropped), and shortest
        utterance kept after trimming, in seconds.
    valid_ratio : float
        Share of each train speaker's utterances that goes to
        ``valid.csv``.
    num_trials : int
        Trials in ``trials.txt`` (half target); fewer when fewer distinct
        pairs exist.
    seed : int
        Seed of the train/valid split and of the trials.
    num_workers : int
        Processes converting the audio (does not change the outputs).
    trim_db : float
        Silence threshold below the utterance's loudness, in dB; ``0``
        disables trimming.
    trim_margin : float
        Seconds kept before and after the speech when trimming.

    Example
    -------
    >>> PrepOptions(seg_dur=2.0).min_dur
    1.0
    >>> PrepOptions(seg_dur=1.0, min_dur=2.0, num_workers=0)
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.ConfigError: min_dur must be ...; num_workers ...
    """

    sample_rate: int = 8000
    seg_dur: float = 3.0
    min_dur: float = 1.0
    valid_ratio: float = 0.1
    num_trials: int = DEFAULT_NUM_TRIALS
    seed: int = 1234
    num_workers: int = 1
    trim_db: float = 40.0
    trim_margin: float = 0.1

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be finite (got {value})"
            for name, value in (
                ("seg_dur", self.seg_dur),
                ("min_dur", self.min_dur),
                ("valid_ratio", self.valid_ratio),
                ("trim_db", self.trim_db),
                ("trim_margin", self.trim_margin),
            )
            if not math.isfinite(value)
        ]
        if not self.sample_rate > 0:
            problems.append(f"sample_rate must be > 0 (got {self.sample_rate})")
        if not self.seg_dur > 0:
            problems.append(f"seg_dur must be > 0 (got {self.seg_dur})")
        if not 0 < self.min_dur <= self.seg_dur:
            problems.append(
                "min_dur must be > 0 and <= seg_dur "
                f"(got {self.min_dur}, {self.seg_dur})"
            )
        if not 0 <= self.valid_ratio < 1:
            problems.append(
                f"valid_ratio must be in [0, 1) (got {self.valid_ratio})"
            )
        if self.num_trials < 0:
            problems.append(f"num_trials must be >= 0 (got {self.num_trials})")
        if self.num_workers < 1:
            problems.append(
                f"num_workers must be >= 1 (got {self.num_workers})"
            )
        if self.trim_db < 0:
            problems.append(f"trim_db must be >= 0 (got {self.trim_db})")
        if self.trim_margin < 0:
            problems.append(
                f"trim_margin must be >= 0 (got {self.trim_margin})"
            )
        if problems:
            raise ConfigError("; ".join(problems))

    def audio_options(self, data_folder: Path) -> dict[str, Any]:
        """What the cached WAVs depend on (``wavs/.audio_options.json``)."""
        return {
            "data_folder": str(data_folder),
            "sample_rate": int(self.sample_rate),
            "trim_db": float(self.trim_db),
            "trim_margin": float(self.trim_margin),
            "prep_version": PREP_VERSION,
        }

    def saved_options(self, data_folder: Path) -> dict[str, Any]:
        """What all outputs depend on (``options.json``, the skip rule)."""
        return {
            **self.audio_options(data_folder),
            "seg_dur": float(self.seg_dur),
            "min_dur": float(self.min_dur),
            "valid_ratio": float(self.valid_ratio),
            "num_trials": int(self.num_trials),
            "seed": int(self.seed),
        }


@dataclass(frozen=True)
class ConvertedUtterance:
    """A kept utterance: its source and its cached, trimmed WAV.

    Arguments
    ---------
    source : SourceUtterance
        What the listing gave.
    n_out : int
        Samples of the cached WAV (after trimming).
    raw_seconds : float
        Duration of the source file.
    channels : int
        Channels of the source file (more than one: mixed down).
    in_rate : int
        Sample rate of the source file.
    reused : bool
        Whether the cached WAV was reused (not converted by this run).
    """

    source: SourceUtterance
    n_out: int
    raw_seconds: float
    channels: int
    in_rate: int
    reused: bool = False

    @property
    def utt_id(self) -> str:
        """The utterance id."""
        return self.source.utt_id

    @property
    def spk_id(self) -> str:
        """The speaker id."""
        return self.source.spk_id


def _wav_relpath(u: SourceUtterance) -> str:
    """Where the cached WAV of ``u`` lies in the save folder."""
    return f"{_WAVS}/{u.split}/{u.spk_id}/{u.utt_id}.wav"


# --------------------------------------------------------------------------
# Step 2: convert and trim (the per-utterance part runs in workers)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    src: str
    dst: str


@dataclass
class _Result:
    reason: str | None = None  # set when skipped
    raw_seconds: float = 0.0
    n_out: int = 0
    channels: int = 1
    in_rate: int = 0
    reused: bool = False


def _process(
    job: _Job, sample_rate: int, trim_db: float, margin: float, min_len: int
) -> _Result:
    """Reads, converts, trims and caches one utterance (or says why not).

    Only errors reading or decoding the *input* skip it; an error writing
    the cached WAV raises :class:`~deep_speaker_sb.errors.OutputError`.
    """
    if Path(job.src).suffix.lower() in FFMPEG_SUFFIXES:
        return _process_decoded(job, sample_rate, trim_db, margin, min_len)
    res = _Result()
    n_cached = _cached_frames(job)
    try:
        with sf.SoundFile(job.src) as f:
            res.channels, res.in_rate = f.channels, f.samplerate
            res.raw_seconds = f.frames / f.samplerate
            if f.frames == 0:
                res.reason = "empty: no audio samples"
                return _forget(job, res)
            if n_cached is None:
                data = f.read(dtype="float32", always_2d=True)
        if n_cached is None:
            x = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)
            if not np.all(np.isfinite(x)):
                res.reason = "unreadable: non-finite samples"
                return _forget(job, res)
            y = resample(x, res.in_rate, sample_rate)
            start, stop = trim_silence(y, sample_rate, trim_db, margin)
            if stop == start:
                res.reason = "silent: no signal above {:g} dBFS".format(
                    SILENCE_DBFS
                )
                return _forget(job, res)
            y = y[start:stop]
    except (RuntimeError, OSError, ValueError, EOFError) as exc:
        if isinstance(exc, UserError) or not Path(job.src).is_file():
            raise
        msg = str(exc).splitlines()[0] if str(exc) else ""
        msg = msg.replace(f"'{job.src}'", "file")
        res.reason = f"unreadable: {type(exc).__name__}: {msg}".strip()
        return _forget(job, res)
    # the input was read; what goes wrong from here is the output's fault
    if n_cached is not None:
        res.n_out, res.reused = n_cached, True
    else:
        res.n_out = len(y)
        if res.n_out >= min_len:
            with _writing(job.dst):
                _write_wav(job.dst, y, sample_rate)
    if res.n_out < min_len:
        res.reason = "too short after trimming: {:.2f} s < {:g} s".format(
            res.n_out / sample_rate, min_len / sample_rate
        )
        return _forget(job, res)
    return res


def require_ffmpeg(what: str) -> str:
    """The ``ffmpeg`` program that decodes ``what``, or a ConfigError.

    libsndfile (``soundfile``) reads WAV, FLAC, OGG and MP3 but not AAC
    (``.m4a``): those inputs are decoded by ``ffmpeg``.
    """
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise ConfigError(
            f"{what} needs an AAC decoder and ffmpeg is not on PATH: "
            "install ffmpeg (apt-get install ffmpeg, or conda install -c "
            "conda-forge ffmpeg) or convert the .m4a files to WAV or FLAC"
        )
    return exe


def decode_with_ffmpeg(src: str, sample_rate: int) -> np.ndarray:
    """Decodes ``src`` with ffmpeg: mono float32 at ``sample_rate``.

    ffmpeg mixes the channels down and resamples; a file it cannot
    decode raises a ``RuntimeError`` (the input is then skipped).
    """
    cmd = [
        require_ffmpeg(src),
        *("-nostdin", "-v", "error", "-i", src),
        *("-ac", "1", "-ar", str(int(sample_rate)), "-f", "f32le", "-"),
    ]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        why = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise RuntimeError(f"ffmpeg: {why[-1] if why else proc.returncode}")
    return np.frombuffer(proc.stdout, dtype="<f4").astype(np.float32)


def _process_decoded(
    job: _Job, sample_rate: int, trim_db: float, margin: float, min_len: int
) -> _Result:
    """:func:`_process` for an input that ffmpeg decodes (AAC)."""
    res = _Result(channels=1, in_rate=sample_rate)
    try:
        y = decode_with_ffmpeg(job.src, sample_rate)
    except (RuntimeError, OSError) as exc:
        if isinstance(exc, UserError) or not Path(job.src).is_file():
            raise
        res.reason = f"unreadable: {exc}"
        return _forget(job, res)
    res.raw_seconds = len(y) / sample_rate
    if not len(y):
        res.reason = "empty: no audio samples"
        return _forget(job, res)
    start, stop = trim_silence(y, sample_rate, trim_db, margin)
    if stop == start:
        res.reason = "silent: no signal above {:g} dBFS".format(SILENCE_DBFS)
        return _forget(job, res)
    res.n_out = stop - start
    if res.n_out < min_len:
        res.reason = "too short after trimming: {:.2f} s < {:g} s".format(
            res.n_out / sample_rate, min_len / sample_rate
        )
        return _forget(job, res)
    if _cached_frames(job) != res.n_out:
        with _writing(job.dst):
            _write_wav(job.dst, y[start:stop], sample_rate)
    return res


def _cached_frames(job: _Job) -> int | None:
    """Frames of a complete cached WAV newer than its source, or None."""
    try:
        if os.stat(job.dst).st_mtime < os.stat(job.src).st_mtime:
            return None
        with wave.open(job.dst, "rb") as w:
            return w.getnframes()
    except (OSError, EOFError, wave.Error):
        return None  # absent or broken: converted (and written) again


@contextlib.contextmanager
def _writing(path: Pathlike) -> Iterator[None]:
    """Turns an OS error writing the output ``path`` into an OutputError.

    Example
    -------
    >>> with _writing("/full/disk/a.wav"):
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


def _forget(job: _Job, res: _Result) -> _Result:
    """Removes the cached WAV of a skipped utterance, if any."""
    with _writing(job.dst), contextlib.suppress(FileNotFoundError):
        os.remove(job.dst)
    return res


def _write_wav(path: str, y: np.ndarray, sample_rate: int) -> None:
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


def _reset_cache_if_stale(wav_root: Path, audio_options: dict) -> None:
    """Empties the WAV cache unless it was made with ``audio_options``.

    The options are recorded *before* any WAV is written; since each WAV
    is written atomically, every WAV under a matching record is complete
    and an interrupted preparation reuses them.
    """
    record = wav_root / _AUDIO_OPTIONS_FILE
    try:
        same = json.loads(record.read_text(encoding="utf-8")) == audio_options
    except (OSError, ValueError):
        same = False
    if same:
        return
    if not record.is_file() and wav_root.is_dir() and any(wav_root.iterdir()):
        raise ConfigError(
            f"{wav_root} exists but was not made by the data preparation; "
            "choose another save folder"
        )
    if wav_root.exists():
        logger.info("audio options changed: emptying %s", wav_root)
        shutil.rmtree(wav_root)
    write_json(record, audio_options)


def _remove_orphans(wav_root: Path, keep: set[str]) -> None:
    """Removes cached WAVs (and temporary files) of no kept utterance."""
    removed = 0
    for folder, _dirs, names in os.walk(wav_root, topdown=False):
        for name in names:
            path = os.path.join(folder, name)
            if name == _AUDIO_OPTIONS_FILE or path in keep:
                continue
            os.remove(path)
            removed += 1
        if folder != str(wav_root) and not os.listdir(folder):
            os.rmdir(folder)
    if removed:
        logger.info("removed %d stale files from %s", removed, wav_root)


def _remove_temporaries(save_folder: Path) -> None:
    """Removes the temporary files a killed preparation left in the save
    folder (``atomic_write``'s ``.<name>.*.tmp`` of its outputs; those of
    the WAV cache go with :func:`_remove_orphans`).

    Example
    -------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in (".train.csv.x1.tmp", ".options.json.x2.tmp", "keep"):
    ...     _ = (d / name).write_text("")
    >>> _remove_temporaries(d)
    >>> [p.name for p in d.iterdir()]
    ['keep']
    """
    removed = 0
    for name in (*OUTPUT_FILES, OPTIONS_FILE):
        for tmp in save_folder.glob(f".{glob.escape(name)}.*.tmp"):
            tmp.unlink(missing_ok=True)
            removed += 1
    if removed:
        logger.info("removed %d temporary files of an interrupted run", removed)


def _run(work, jobs: list[_Job], num_workers: int) -> list[_Result]:
    """Runs ``work`` over ``jobs`` (in order) with a progress bar."""
    bar = dict(total=len(jobs), desc="prep", unit="utt", mininterval=1.0)
    if num_workers == 1 or len(jobs) < 2:
        return [work(j) for j in tqdm(jobs, **bar)]
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    chunk = max(1, min(32, len(jobs) // (8 * num_workers)))
    with ctx.Pool(num_workers) as pool:
        return list(tqdm(pool.imap(work, jobs, chunksize=chunk), **bar))


def _convert_all(
    utterances: Sequence[SourceUtterance],
    save_folder: Path,
    options: PrepOptions,
) -> tuple[list[ConvertedUtterance], list[Skipped]]:
    """Step 2 over a listing whose WAV cache is up to date (or empty)."""
    jobs = [_Job(u.src, str(save_folder / _wav_relpath(u))) for u in utterances]
    for spk_dir in sorted({Path(j.dst).parent for j in jobs}):
        with _writing(spk_dir):
            spk_dir.mkdir(parents=True, exist_ok=True)
    work = functools.partial(
        _process,
        sample_rate=int(options.sample_rate),
        trim_db=float(options.trim_db),
        margin=float(options.trim_margin),
        min_len=int(round(options.min_dur * options.sample_rate)),
    )
    results = _run(work, jobs, options.num_workers)
    kept, skipped = [], []
    for u, job, res in zip(utterances, jobs, results, strict=True):
        if res.reason:
            skipped.append(Skipped(job.src, u.utt_id, res.reason))
        else:
            kept.append(
                ConvertedUtterance(
                    u,
                    res.n_out,
                    res.raw_seconds,
                    res.channels,
                    res.in_rate,
                    res.reused,
                )
            )
    with _writing(save_folder / _WAVS):
        _remove_orphans(
            save_folder / _WAVS,
            {str(save_folder / _wav_relpath(u.source)) for u in kept},
        )
    return kept, skipped


# --------------------------------------------------------------------------
# Steps 3 and 4: split, segment, write
# --------------------------------------------------------------------------


def split_train_valid(
    utts: Iterable[_U], valid_ratio: float, seed: int
) -> tuple[list[_U], list[_U]]:
    """Per speaker, a seeded ``valid_ratio`` share of utterances to valid.

    A speaker with two utterances or more keeps at least one in each part
    (when ``valid_ratio > 0``).  Both parts are sorted by speaker, then
    utterance.

    Arguments
    ---------
    utts : iterable
        Utterances: anything with ``utt_id`` and ``spk_id`` attributes.
    valid_ratio : float
        Share of each speaker's utterances that goes to valid.
    seed : int
        The split depends only on it, the speaker and its utterance ids.

    Returns
    -------
    (list, list)
        The train part and the valid part.

    Example
    -------
    >>> utts = [SourceUtterance("train", f"{s}_{k}", s, "")
    ...         for s in ("A", "B") for k in range(5)]
    >>> train, valid = split_train_valid(utts, 0.2, seed=1)
    >>> len(train), sorted(u.spk_id for u in valid)
    (8, ['A', 'B'])
    >>> split_train_valid(utts, 0.2, seed=1) == (train, valid)
    True
    """
    by_spk: dict[str, list[_U]] = defaultdict(list)
    for u in utts:
        by_spk[u.spk_id].append(u)
    train, valid = [], []
    for spk in sorted(by_spk):
        own = sorted(by_spk[spk], key=lambda u: u.utt_id)
        n = len(own)
        n_valid = 0
        if valid_ratio > 0 and n >= 2:
            n_valid = min(max(1, round(n * valid_ratio)), n - 1)
        shuffled = own[:]
        random.Random(f"{seed}:{spk}").shuffle(shuffled)
        chosen = {u.utt_id for u in shuffled[:n_valid]}
        for u in own:
            (valid if u.utt_id in chosen else train).append(u)
    return train, valid


def segment_rows(
    utts: Iterable[ConvertedUtterance],
    sample_rate: int,
    seg_dur: float,
    min_dur: float,
) -> list[SegmentRow]:
    """The manifest rows of cached utterances: one per segment.

    Segment ``k`` of utterance ``U`` is ``U_k``; its ``wav`` is the cached
    WAV under ``{data_root}`` (:func:`deep_speaker_sb.dsp.segment_bounds`
    cuts the segments).

    Example
    -------
    >>> src = SourceUtterance("train", "A_1", "A", "a.flac", None, "xin")
    >>> u = ConvertedUtterance(src, 60000, 9.0, 1, 16000)
    >>> rows = segment_rows([u], 8000, 3.0, 1.0)
    >>> [(r.ID, r.start, r.stop, r.gender) for r in rows]
    [('A_1_0', 0, 24000, 'unknown'), ('A_1_1', 24000, 48000, 'unknown'),
     ('A_1_2', 48000, 60000, 'unknown')]
    >>> rows[0].wav
    '{data_root}/wavs/train/A/A_1.wav'
    """
    rows = []
    for u in utts:
        src = u.source
        wav = f"{DATA_ROOT}/{_wav_relpath(src)}"
        bounds = segment_bounds(u.n_out, sample_rate, seg_dur, min_dur)
        for k, (start, stop) in enumerate(bounds):
            rows.append(
                SegmentRow(
                    ID=f"{src.utt_id}_{k}",
                    duration=round((stop - start) / sample_rate, 6),
                    wav=wav,
                    start=start,
                    stop=stop,
                    spk_id=src.spk_id,
                    gender="unknown" if src.gender is None else src.gender,
                    words=src.words or "",
                )
            )
    return rows


def _write_skipped(path: Path, skipped: Iterable[Skipped]) -> None:
    with atomic_write(path) as f:
        writer = csv.writer(f)
        writer.writerow(SKIPPED_FIELDS)
        writer.writerows((s.path, s.utt_id, s.reason) for s in skipped)


def _kept_trials(
    official: Sequence[Trial], kept: Iterable[ConvertedUtterance]
) -> list[Trial]:
    """The official trials whose two utterances were kept (in order).

    Example
    -------
    >>> src = SourceUtterance("test", "A_1", "A", "a.flac")
    >>> _kept_trials([(1, "A_1", "A_1"), (0, "A_1", "B_1")],
    ...              [ConvertedUtterance(src, 8000, 1.0, 1, 16000)])
    [(1, 'A_1', 'A_1')]
    """
    have = {u.utt_id for u in kept}
    trials = [t for t in official if t[1] in have and t[2] in have]
    if len(trials) < len(official):
        logger.warning(
            "%d of %d official trials dropped: a file they name was "
            "skipped (see skipped.csv)",
            len(official) - len(trials),
            len(official),
        )
    return trials


def _write_trials(path: Path, trials: Iterable[Trial]) -> None:
    with atomic_write(path) as f:
        f.writelines(f"{lab} {a} {b}\n" for lab, a, b in trials)


# --------------------------------------------------------------------------
# Step 5: the summary
# --------------------------------------------------------------------------


def _hours(seconds: float) -> float:
    return round(seconds / 3600.0, 4)


def _summarise(
    parts: dict[str, list[ConvertedUtterance]],
    rows: dict[str, list[SegmentRow]],
    kept: list[ConvertedUtterance],
    skipped: list[Skipped],
    trials: list[Trial],
    native_rate: int,
    sample_rate: int,
) -> dict[str, Any]:
    """Counts and hours of the preparation (``prep_summary.json``), less
    the folders, files and timings that :func:`prepare_corpus` adds."""
    every = [u for p in parts.values() for u in p]
    no_gender, no_words = _missing(kept)
    return {
        "sample_rate": int(sample_rate),
        "speakers": {k: len({u.spk_id for u in p}) for k, p in parts.items()},
        "utterances": {k: len(p) for k, p in parts.items()},
        "segments": {k: len(r) for k, r in rows.items()},
        "hours_before_trim": {
            **{
                k: _hours(sum(u.raw_seconds for u in p))
                for k, p in parts.items()
            },
            "total": _hours(sum(u.raw_seconds for u in every)),
        },
        "hours_after_trim": {
            **{
                k: _hours(sum(u.n_out for u in p) / sample_rate)
                for k, p in parts.items()
            },
            "total": _hours(sum(u.n_out for u in every) / sample_rate),
        },
        "hours_in_segments": {
            k: _hours(sum(r.duration for r in part_rows))
            for k, part_rows in rows.items()
        },
        "skipped": len(skipped),
        "skipped_by_reason": dict(
            sorted(Counter(s.reason.split(":")[0] for s in skipped).items())
        ),
        "converted": {
            "downmixed": sum(1 for u in kept if u.channels > 1),
            "other_sample_rate": sum(
                1 for u in kept if u.in_rate != native_rate
            ),
        },
        "wavs_without_prompt": no_words,
        "speakers_without_gender": no_gender,
        "trials": {
            "target": sum(1 for t in trials if t[0] == 1),
            "nontarget": sum(1 for t in trials if t[0] == 0),
        },
    }


def _missing(kept: list[ConvertedUtterance]) -> tuple[list[str], int]:
    """Speakers without a gender, and the number of utterances without
    words, among the kept utterances."""
    no_gender = {u.spk_id for u in kept if u.source.gender is None}
    return sorted(no_gender), sum(1 for u in kept if u.source.words is None)


def _warn(
    kept: list[ConvertedUtterance], skipped: list[Skipped], skipped_csv: Path
) -> None:
    """Logs what the preparation kept incomplete or left out."""
    no_gender, no_words = _missing(kept)
    if no_gender:
        logger.warning(
            "%d speakers without a gender, kept with gender 'unknown': %s",
            len(no_gender),
            " ".join(no_gender),
        )
    if no_words:
        logger.warning("%d WAVs without a prompt, kept with no words", no_words)
    if skipped:
        logger.warning("%d inputs skipped, see %s", len(skipped), skipped_csv)


# --------------------------------------------------------------------------
# The preparation
# --------------------------------------------------------------------------


def _cache_complete(save_folder: Path, files: dict[str, Path]) -> bool:
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


def check_prepared_rate(prep_folder: Pathlike, sample_rate: int) -> None:
    """Refuses to train at another rate than the prepared WAVs'.

    The manifests' segment bounds are in samples of the cached WAVs, so
    the YAML's ``sample_rate`` must be the rate ``data_prep.py`` used
    (``prep_summary.json``); without a readable summary nothing is
    checked (reading the manifests reports what is missing).

    Example
    -------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> write_json(d / "prep_summary.json", {"sample_rate": 16000})
    >>> check_prepared_rate(d, 16000)
    >>> check_prepared_rate(d, 8000)
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.ConfigError: ... prepared at 16000 Hz ...
    """
    summary = Path(prep_folder) / "prep_summary.json"
    try:
        prepared = json.loads(summary.read_text(encoding="utf-8"))
        rate = int(prepared["sample_rate"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    if rate != int(sample_rate):
        raise ConfigError(
            f"{prep_folder} was prepared at {rate} Hz but sample_rate is "
            f"{sample_rate}: add --sample_rate {rate} to the command (the "
            "model's rate must be the prepared WAVs')"
        )


def prepare_corpus(
    data_folder: Pathlike,
    list_utterances: Callable[[Path], Listing],
    save_folder: Pathlike,
    options: PrepOptions,
    corpus_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Prepares a listed corpus: WAV cache, manifests, trials, reports.

    Skips all work (and does not list the corpus) when the outputs exist,
    were made with the same options and data folder (``options.json``)
    and every cached WAV the manifests name exists; prepares again
    (reusing the cached WAVs that exist) when one is missing.

    Arguments
    ---------
    data_folder : Pathlike
        The corpus folder (recorded in the options: another folder means
        another preparation).
    list_utterances : callable
        The corpus-specific step: ``list_utterances(data_folder)`` (the
        folder resolved) returns the :class:`Listing`.
    save_folder : Pathlike
        Where the WAV cache, manifests and reports are written.
    options : PrepOptions
        Audio, segment, split and trial options.
    corpus_options : dict, optional
        What else the listing depends on (the corpus, its trial list,
        its test speakers...): saved in ``options.json`` under
        ``"corpus"``, so that changing it prepares again.

    Returns
    -------
    dict
        The summary (also saved as ``prep_summary.json``): speakers,
        utterances and segments per split, hours before and after
        trimming, the number of skipped inputs and their reasons, the
        cached WAVs reused (``reused_from_cache``), the seconds of audio
        this run converted (``converted_seconds``) and their speed
        (``realtime_factor``; ``None`` when it converted none).  When the
        folder is already prepared, the saved summary with the folder's
        current ``save_folder`` and ``files`` (it may have moved).

    Raises
    ------
    DataError
        When no usable utterance is left in a split.
    ConfigError
        When ``save_folder`` is a file, or ``save_folder/wavs`` holds
        files the preparation did not make.
    OutputError
        When an output cannot be written (disk full, no permission):
        ``options.json`` is not saved, so the next run prepares again.

    Example
    -------
    >>> import tempfile, pathlib, soundfile
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> tone = 0.5 * np.sin(np.arange(2 * 16000) / 4).astype(np.float32)
    >>> utts = []
    >>> for split, spk in [("train", "A"), ("train", "B"), ("test", "C"),
    ...                    ("test", "D")]:
    ...     for k in range(3):
    ...         src = tmp / f"{spk}{k}.flac"
    ...         soundfile.write(src, tone, 16000)
    ...         utts.append(SourceUtterance(split, f"{spk}{k}", spk,
    ...                                     str(src), "f", ""))
    >>> summary = prepare_corpus(
    ...     tmp, lambda folder: Listing(utts, native_rate=16000),
    ...     tmp / "prep", PrepOptions(num_trials=6))
    >>> summary["speakers"], summary["segments"], summary["trials"]
    ({'train': 2, 'valid': 2, 'test': 2},
     {'train': 4, 'valid': 2, 'test': 6},
     {'target': 3, 'nontarget': 3})
    """
    t0 = time.perf_counter()
    data_folder = Path(data_folder).expanduser().resolve()
    save_folder = Path(save_folder).expanduser()
    files = {name: save_folder / name for name in OUTPUT_FILES}
    wav_root = save_folder / _WAVS
    outputs = [*files.values(), wav_root / _AUDIO_OPTIONS_FILE]
    saved_options = options.saved_options(data_folder)
    if corpus_options is not None:
        saved_options["corpus"] = corpus_options
    if save_folder.exists() and not save_folder.is_dir():
        raise ConfigError(
            f"save folder {save_folder} is a file, not a folder; give "
            "another --save_folder"
        )
    if outputs_up_to_date(
        save_folder, outputs, saved_options
    ) and _cache_complete(save_folder, files):
        logger.info("%s already prepared, skipping", save_folder)
        summary = json.loads(
            files["prep_summary.json"].read_text(encoding="utf-8")
        )
        # the folder may have moved since: name where it is now
        return {**summary, **_where(save_folder, files)}
    logger.info("preparing %s into %s", data_folder, save_folder)
    with _writing(save_folder):
        save_folder.mkdir(parents=True, exist_ok=True)
        # not "prepared" again until every output is rewritten
        (save_folder / OPTIONS_FILE).unlink(missing_ok=True)
        _remove_temporaries(save_folder)
    listing = list_utterances(data_folder)

    # ---- step 2: convert and trim
    with _writing(wav_root / _AUDIO_OPTIONS_FILE):
        _reset_cache_if_stale(wav_root, options.audio_options(data_folder))
    kept, failed = _convert_all(listing.utterances, save_folder, options)
    skipped = sorted(
        [*listing.skipped, *failed], key=lambda s: (s.path, s.utt_id)
    )
    _warn(kept, skipped, files["skipped.csv"])
    with _writing(files["skipped.csv"]):
        _write_skipped(files["skipped.csv"], skipped)
    by_split = {s: [u for u in kept if u.source.split == s] for s in SPLITS}
    for split, utts in by_split.items():
        if not utts:
            raise DataError(
                f"no usable {split} utterance in {data_folder} "
                f"(see {files['skipped.csv']})"
            )

    # ---- steps 3 and 4: split, manifests and trials
    train, valid = split_train_valid(
        by_split["train"], options.valid_ratio, options.seed
    )
    parts = {"train": train, "valid": valid, "test": by_split["test"]}
    rows = {
        name: segment_rows(
            part, options.sample_rate, options.seg_dur, options.min_dur
        )
        for name, part in parts.items()
    }
    for name, part_rows in rows.items():
        with _writing(files[f"{name}.csv"]):
            write_manifest(files[f"{name}.csv"], part_rows)
    if listing.trials is None:
        trials = make_trials(
            {u.utt_id: u.spk_id for u in by_split["test"]},
            options.num_trials,
            options.seed,
        )
    else:
        trials = _kept_trials(listing.trials, by_split["test"])
    with _writing(files["trials.txt"]):
        _write_trials(files["trials.txt"], trials)

    # ---- step 5: summary
    counts = _summarise(
        parts,
        rows,
        kept,
        skipped,
        trials,
        listing.native_rate,
        options.sample_rate,
    )
    if listing.trials is not None:
        counts["trials"]["official"] = len(listing.trials)
        counts["trials"]["dropped"] = len(listing.trials) - len(trials)
    elapsed = time.perf_counter() - t0
    # the speed of this run's work: audio reused from the cache is not
    # counted (a resumed run would claim it converted it all)
    reused = sum(1 for u in kept if u.reused)
    new_seconds = sum(u.raw_seconds for u in kept if not u.reused)
    where = _where(save_folder, files)
    summary = {
        "data_folder": str(data_folder),
        "save_folder": where["save_folder"],
        **counts,
        "prep_seconds": round(elapsed, 2),
        "reused_from_cache": reused,
        "converted_seconds": round(new_seconds, 3),
        "realtime_factor": (
            round(new_seconds / max(elapsed, 1e-9), 1) if new_seconds else None
        ),
        "files": where["files"],
    }
    with _writing(files["prep_summary.json"]):
        write_json(files["prep_summary.json"], summary)
    with _writing(save_folder / OPTIONS_FILE):
        save_options(save_folder, saved_options)
    converted = (
        f"converted {_hours(new_seconds):.2f} h "
        f"({summary['realtime_factor']} x real time)"
        if new_seconds
        else "converted nothing"
    )
    logger.info(
        "prepared %.2f h of audio (%.2f h after trimming) in %.1f s; "
        "%s, %d utterances reused from cache",
        summary["hours_before_trim"]["total"],
        summary["hours_after_trim"]["total"],
        elapsed,
        converted,
        reused,
    )
    return summary


def _where(save_folder: Path, files: dict[str, Path]) -> dict[str, Any]:
    """The summary's ``save_folder`` and ``files``: where they are now."""
    return {
        "save_folder": str(save_folder.resolve()),
        "files": {k: str(v.resolve()) for k, v in files.items()},
    }
