"""VIVOS preparation: a trimmed 8 kHz WAV cache and SpeechBrain manifests.

:func:`prepare_vivos` reads a VIVOS corpus (or a corpus in the same
layout, such as :mod:`deep_speaker_sb.data.synthetic`'s)::

    vivos/
      train/waves/<SPK>/<UTT>.wav   train/prompts.txt   train/genders.txt
      test/waves/<SPK>/<UTT>.wav    test/prompts.txt    test/genders.txt

(``prompts.txt`` lines look like ``VIVOSSPK01_R001 KHÁCH SẠN``,
``genders.txt`` lines like ``VIVOSSPK01 m``; the speaker id of an
utterance is its id before the last ``_``), and writes into the save
folder the files described in ``docs/DESIGN.md``:

- ``wavs/{train,test}/<SPK>/<UTT>.wav``: mono PCM-16 WAV at
  ``sample_rate`` with leading and trailing silence trimmed, so training
  never resamples;
- ``train.csv``, ``valid.csv`` (the train speakers, split per speaker by
  utterance), ``test.csv`` (the unseen test speakers): one row per segment
  of at most ``seg_dur`` seconds;
- ``trials.txt`` (balanced verification trials over the test utterances),
  ``skipped.csv`` (every input left out, with why), ``prep_summary.json``
  and ``options.json`` (the skip rule of :mod:`deep_speaker_sb.utils`).

Bad input never stops the preparation: unreadable, empty or silent WAVs
and utterances shorter than ``min_dur`` after trimming are skipped and
listed in ``skipped.csv``, as are prompts without a WAV; stereo files are
mixed down and other sample rates resampled; a speaker missing from
``genders.txt`` is kept with gender ``unknown`` and a WAV without a prompt
is kept with empty ``words`` (both with a logged warning and a count in the
summary).
"""

from __future__ import annotations

import csv
import functools
import json
import multiprocessing
import os
import random
import shutil
import time
import wave
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from math import gcd
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from scipy.signal import firwin, resample_poly
from speechbrain.utils.logger import get_logger
from tqdm import tqdm

from deep_speaker_sb.data.trials import make_trials
from deep_speaker_sb.errors import UserError
from deep_speaker_sb.utils import (
    Pathlike,
    atomic_write,
    outputs_up_to_date,
    save_options,
    write_json,
)

logger = get_logger(__name__)

#: Columns of ``train.csv``, ``valid.csv`` and ``test.csv``, in order.
CSV_FIELDS = [
    "ID",
    "duration",
    "wav",
    "start",
    "stop",
    "spk_id",
    "gender",
    "words",
]
#: Columns of ``skipped.csv``.
SKIPPED_FIELDS = ["path", "utt_id", "reason"]
#: Placeholder for the save folder in the ``wav`` column.
DATA_ROOT = "{data_root}"


def resolve_wav(path: str, data_root: Pathlike) -> str:
    """Substitutes the prepared folder for ``{data_root}`` in a wav path.

    The manifests write ``{data_root}/wavs/...`` (see docs/DESIGN.md);
    SpeechBrain's own ``from_csv`` only substitutes ``$data_root``, so
    both spellings are handled here.

    Example
    -------
    >>> resolve_wav("{data_root}/wavs/a.wav", "/data/vivos8k")
    '/data/vivos8k/wavs/a.wav'
    """
    root = str(data_root)
    return path.replace(DATA_ROOT, root).replace("$data_root", root)


#: Sample rate of the VIVOS recordings; other rates are counted as
#: conversions in the summary.
VIVOS_SAMPLE_RATE = 16000
#: Default number of trials in ``trials.txt`` (half target, half not).
DEFAULT_NUM_TRIALS = 10000
#: Frames whose loudness reference is below this (dBFS) are "silent".
SILENCE_DBFS = -70.0
#: Frame length (seconds) of the energy-based trimming.
TRIM_FRAME_S = 0.01
#: Bumped when the outputs change for the same options.
PREP_VERSION = 1

_AUDIO_OPTIONS_FILE = ".audio_options.json"
_SPLITS = ("train", "test")


class VivosError(UserError):
    """The data folder is missing or is not a VIVOS corpus, or an option
    is out of range.  Its message says what to fix."""


# --------------------------------------------------------------------------
# Signal helpers
# --------------------------------------------------------------------------


def trim_silence(
    x: np.ndarray,
    sample_rate: int,
    trim_db: float = 40.0,
    margin: float = 0.1,
) -> tuple[int, int]:
    """Finds the span of ``x`` without its leading and trailing silence.

    The signal is cut into 10 ms frames; a frame is speech when its energy
    is at most ``trim_db`` below the loudness reference of the utterance
    (the 99th percentile of the frame energies, so that a single click
    does not set it).  The span runs from the first to the last speech
    frame, widened by ``margin`` seconds on each side.

    Arguments
    ---------
    x : numpy.ndarray
        Mono signal, floats in [-1, 1].
    sample_rate : int
        Its sample rate.
    trim_db : float
        Threshold below the reference, in dB; ``0`` disables trimming.
    margin : float
        Seconds of context kept on each side of the speech.

    Returns
    -------
    (int, int)
        ``start, stop`` sample indices; ``start == stop`` when the whole
        signal is silent (reference below ``SILENCE_DBFS``).

    Example
    -------
    >>> sr = 8000
    >>> t = np.arange(2 * sr) / sr
    >>> tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    >>> x = np.concatenate([np.zeros(sr), tone, np.zeros(sr)])
    >>> start, stop = trim_silence(x, sr, trim_db=40, margin=0.1)
    >>> start / sr, stop / sr
    (0.9, 3.1)
    >>> trim_silence(np.zeros(sr), sr)
    (0, 0)
    """
    n = len(x)
    frame = max(1, int(round(TRIM_FRAME_S * sample_rate)))
    n_frames = -(-n // frame)
    if n_frames == 0:
        return 0, 0
    padded = np.zeros(n_frames * frame, dtype=np.float32)
    padded[:n] = x
    energy = np.einsum(
        "ij,ij->i", padded.reshape(n_frames, frame), padded.reshape(-1, frame)
    ) / np.float32(frame)
    db = 10.0 * np.log10(energy + 1e-12)
    ref = float(np.percentile(db, 99))
    if ref < SILENCE_DBFS:
        return 0, 0
    if trim_db <= 0:
        return 0, n
    voiced = np.flatnonzero(db >= ref - trim_db)
    pad = int(round(margin * sample_rate))
    start = max(0, int(voiced[0]) * frame - pad)
    stop = min(n, (int(voiced[-1]) + 1) * frame + pad)
    return start, stop


def segment_bounds(
    n_samples: int, sample_rate: int, seg_dur: float, min_dur: float
) -> list[tuple[int, int]]:
    """Cuts an utterance into segments of at most ``seg_dur`` seconds.

    Segments follow each other from the start; a last piece shorter than
    ``min_dur`` seconds is dropped.

    Arguments
    ---------
    n_samples : int
        Length of the utterance in samples.
    sample_rate : int
        Its sample rate.
    seg_dur : float
        Longest segment, in seconds.
    min_dur : float
        Shortest segment kept, in seconds.

    Returns
    -------
    list of (int, int)
        ``(start, stop)`` sample bounds of each segment.

    Example
    -------
    >>> segs = segment_bounds(int(7.5 * 8000), 8000, 3.0, 1.0)
    >>> [(stop - start) / 8000 for start, stop in segs]
    [3.0, 3.0, 1.5]
    >>> len(segment_bounds(int(6.5 * 8000), 8000, 3.0, 1.0))
    2
    >>> segment_bounds(4000, 8000, 3.0, 1.0)
    []
    """
    seg = max(1, int(round(seg_dur * sample_rate)))
    shortest = int(round(min_dur * sample_rate))
    bounds = []
    for start in range(0, n_samples, seg):
        stop = min(start + seg, n_samples)
        if stop - start >= shortest:
            bounds.append((start, stop))
    return bounds


@functools.lru_cache(maxsize=8)
def _lowpass(up: int, down: int) -> np.ndarray:
    """The anti-aliasing filter ``scipy.signal.resample_poly`` designs
    (Kaiser window, beta 5, 10 zero crossings per side), made once."""
    rate = max(up, down)
    taps = firwin(2 * 10 * rate + 1, 1.0 / rate, window=("kaiser", 5.0))
    return taps.astype(np.float32)


def _resample(x: np.ndarray, orig: int, new: int) -> np.ndarray:
    """Polyphase (Kaiser-windowed sinc) resampling; float32 out."""
    if orig == new:
        return x
    g = gcd(orig, new)
    up, down = new // g, orig // g
    y = resample_poly(x, up, down, window=_lowpass(up, down))
    return y.astype(np.float32, copy=False)


# --------------------------------------------------------------------------
# Per-utterance work (runs in the worker processes)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    split: str
    utt_id: str
    spk_id: str
    src: str
    dst: str


@dataclass
class _Result:
    utt_id: str
    reason: str | None = None  # set when skipped
    raw_seconds: float = 0.0
    n_out: int = 0
    channels: int = 1
    in_rate: int = 0


def _process(
    job: _Job, sample_rate: int, trim_db: float, margin: float, min_len: int
) -> _Result:
    """Reads, converts, trims and caches one utterance (or says why not)."""
    res = _Result(job.utt_id)
    try:
        cached = _cached(job)
        with sf.SoundFile(job.src) as f:
            res.channels, res.in_rate = f.channels, f.samplerate
            res.raw_seconds = f.frames / f.samplerate
            if f.frames == 0:
                res.reason = "empty: no audio samples"
                return _forget(job, res)
            if not cached:
                data = f.read(dtype="float32", always_2d=True)
        if cached:
            with wave.open(job.dst, "rb") as w:
                res.n_out = w.getnframes()
        else:
            x = data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)
            if not np.all(np.isfinite(x)):
                res.reason = "unreadable: non-finite samples"
                return _forget(job, res)
            y = _resample(x, res.in_rate, sample_rate)
            start, stop = trim_silence(y, sample_rate, trim_db, margin)
            if stop == start:
                res.reason = "silent: no signal above {:g} dBFS".format(
                    SILENCE_DBFS
                )
                return _forget(job, res)
            y = y[start:stop]
            res.n_out = len(y)
            if res.n_out >= min_len:
                _write_wav(job.dst, y, sample_rate)
    except (RuntimeError, OSError, ValueError, EOFError, wave.Error) as exc:
        if Path(job.src).is_file():
            msg = str(exc).splitlines()[0] if str(exc) else ""
            msg = msg.replace(f"'{job.src}'", "file")
            res.reason = f"unreadable: {type(exc).__name__}: {msg}".strip()
            return _forget(job, res)
        raise
    if res.n_out < min_len:
        res.reason = "too short after trimming: {:.2f} s < {:g} s".format(
            res.n_out / sample_rate, min_len / sample_rate
        )
        return _forget(job, res)
    return res


def _cached(job: _Job) -> bool:
    """Whether a complete cached WAV newer than its source exists."""
    try:
        return os.stat(job.dst).st_mtime >= os.stat(job.src).st_mtime
    except FileNotFoundError:
        return False


def _forget(job: _Job, res: _Result) -> _Result:
    """Removes the cached WAV of a skipped utterance, if any."""
    try:
        os.remove(job.dst)
    except FileNotFoundError:
        pass
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


# --------------------------------------------------------------------------
# Corpus listing
# --------------------------------------------------------------------------


def _check_layout(data_folder: Path) -> None:
    if not data_folder.exists():
        raise VivosError(
            f"data folder not found: {data_folder} (give the VIVOS folder "
            "that holds train/waves and test/waves)"
        )
    missing = [
        f"{s}/waves"
        for s in _SPLITS
        if not (data_folder / s / "waves").is_dir()
    ]
    if missing:
        hint = ""
        for child in sorted(data_folder.glob("*/train/waves")):
            hint = f"; did you mean {child.parent.parent}?"
            break
        raise VivosError(
            f"{data_folder} is not a VIVOS folder: no "
            f"{' or '.join(missing)} in it{hint}"
        )


def _read_table(path: Path) -> dict[str, str]:
    """``key rest-of-line`` files (prompts.txt, genders.txt)."""
    table: dict[str, str] = {}
    if not path.is_file():
        logger.warning("%s not found", path)
        return table
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    for line in text.splitlines():
        parts = line.strip().split(maxsplit=1)
        if parts:
            table[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    return table


def _list_wavs(waves: Path) -> list[Path]:
    return sorted(
        p
        for p in waves.rglob("*")
        if p.suffix.lower() == ".wav" and not p.name.startswith(".")
    )


# --------------------------------------------------------------------------
# Manifests
# --------------------------------------------------------------------------


def _write_csv(
    path: Path, fieldnames: list[str], rows: Iterable[dict[str, Any]]
) -> None:
    """Writes a CSV atomically: a failure leaves no partial file."""
    with atomic_write(path) as f:
        writer = csv.DictWriter(f, fieldnames=fieldnames)
        writer.writeheader()
        for row in rows:
            writer.writerow(row)


@dataclass
class _Utt:
    split: str
    utt_id: str
    spk_id: str
    gender: str
    words: str
    raw_seconds: float
    n_out: int


def _segment_rows(
    utts: list[_Utt],
    split_dir: str,
    sample_rate: int,
    seg_dur: float,
    min_dur: float,
) -> list[dict[str, Any]]:
    rows = []
    for u in utts:
        wav = f"{DATA_ROOT}/wavs/{split_dir}/{u.spk_id}/{u.utt_id}.wav"
        bounds = segment_bounds(u.n_out, sample_rate, seg_dur, min_dur)
        for k, (start, stop) in enumerate(bounds):
            rows.append(
                {
                    "ID": f"{u.utt_id}_{k}",
                    "duration": round((stop - start) / sample_rate, 6),
                    "wav": wav,
                    "start": start,
                    "stop": stop,
                    "spk_id": u.spk_id,
                    "gender": u.gender,
                    "words": u.words,
                }
            )
    return rows


def _split_train_valid(
    utts: list[_Utt], valid_ratio: float, seed: int
) -> tuple[list[_Utt], list[_Utt]]:
    """Per speaker, a seeded ``valid_ratio`` share of utterances to valid.

    A speaker with two utterances or more keeps at least one in each part
    (when ``valid_ratio > 0``).
    """
    by_spk: dict[str, list[_Utt]] = defaultdict(list)
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


def _hours(seconds: float) -> float:
    return round(seconds / 3600.0, 4)


def _check_options(
    sample_rate: int,
    seg_dur: float,
    min_dur: float,
    valid_ratio: float,
    num_trials: int,
    num_workers: int,
    trim_db: float,
    trim_margin: float,
) -> None:
    problems = []
    if not sample_rate > 0:
        problems.append(f"sample_rate must be > 0 (got {sample_rate})")
    if not seg_dur > 0:
        problems.append(f"seg_dur must be > 0 (got {seg_dur})")
    if not 0 < min_dur <= seg_dur:
        problems.append(
            f"min_dur must be > 0 and <= seg_dur (got {min_dur}, {seg_dur})"
        )
    if not 0 <= valid_ratio < 1:
        problems.append(f"valid_ratio must be in [0, 1) (got {valid_ratio})")
    if num_trials < 0:
        problems.append(f"num_trials must be >= 0 (got {num_trials})")
    if num_workers < 1:
        problems.append(f"num_workers must be >= 1 (got {num_workers})")
    if trim_db < 0:
        problems.append(f"trim_db must be >= 0 (got {trim_db})")
    if trim_margin < 0:
        problems.append(f"trim_margin must be >= 0 (got {trim_margin})")
    if problems:
        raise VivosError("; ".join(problems))


def _skip(path: Pathlike, utt_id: str, reason: str) -> dict[str, str]:
    return {"path": str(path), "utt_id": utt_id, "reason": reason}


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
        raise VivosError(
            f"{wav_root} exists but was not made by the VIVOS preparation; "
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


# --------------------------------------------------------------------------
# The preparation
# --------------------------------------------------------------------------


def prepare_vivos(
    data_folder: Pathlike,
    save_folder: Pathlike,
    *,
    sample_rate: int = 8000,
    seg_dur: float = 3.0,
    min_dur: float = 1.0,
    valid_ratio: float = 0.1,
    num_trials: int = DEFAULT_NUM_TRIALS,
    seed: int = 1234,
    num_workers: int = 1,
    trim_db: float = 40.0,
    trim_margin: float = 0.1,
) -> dict[str, Any]:
    """Prepares VIVOS (or a corpus in its layout) for speaker recognition.

    Skips all work when the outputs exist and were made with the same
    options (``options.json``); a cached WAV is reused when it is newer
    than its source and the audio options (``data_folder``,
    ``sample_rate``, ``trim_db``, ``trim_margin``) did not change.

    Arguments
    ---------
    data_folder : Pathlike
        The VIVOS folder, holding ``train/waves`` and ``test/waves``.
    save_folder : Pathlike
        Where the WAV cache, manifests and reports are written.
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

    Returns
    -------
    dict
        The summary (also saved as ``prep_summary.json``): speakers,
        utterances and segments per split, hours before and after
        trimming, the number of skipped inputs and their reasons.

    Raises
    ------
    VivosError
        If ``data_folder`` is missing or not in the VIVOS layout, an option
        is out of range, or no usable utterance is left in a split.

    Example
    -------
    >>> import tempfile, pathlib
    >>> from deep_speaker_sb.data.synthetic import generate_corpus
    >>> tmp = pathlib.Path(tempfile.mkdtemp())
    >>> corpus = generate_corpus(tmp / "vivos", n_train_speakers=2,
    ...     n_test_speakers=2, utts_per_speaker=3, seed=0)
    >>> summary = prepare_vivos(corpus, tmp / "prep")
    >>> summary["speakers"]
    {'train': 2, 'valid': 2, 'test': 2}
    >>> sorted(p.name for p in (tmp / "prep").glob("*.csv"))
    ['skipped.csv', 'test.csv', 'train.csv', 'valid.csv']
    """
    t0 = time.perf_counter()
    data_folder = Path(data_folder).expanduser().resolve()
    save_folder = Path(save_folder).expanduser()
    _check_options(
        sample_rate,
        seg_dur,
        min_dur,
        valid_ratio,
        num_trials,
        num_workers,
        trim_db,
        trim_margin,
    )
    _check_layout(data_folder)

    audio_options = {
        "data_folder": str(data_folder),
        "sample_rate": int(sample_rate),
        "trim_db": float(trim_db),
        "trim_margin": float(trim_margin),
        "prep_version": PREP_VERSION,
    }
    options = {
        **audio_options,
        "seg_dur": float(seg_dur),
        "min_dur": float(min_dur),
        "valid_ratio": float(valid_ratio),
        "num_trials": int(num_trials),
        "seed": int(seed),
    }
    files = {
        name: save_folder / name
        for name in (
            "train.csv",
            "valid.csv",
            "test.csv",
            "trials.txt",
            "skipped.csv",
            "prep_summary.json",
        )
    }
    wav_root = save_folder / "wavs"
    outputs = [*files.values(), wav_root / _AUDIO_OPTIONS_FILE]
    if outputs_up_to_date(save_folder, outputs, options):
        logger.info("%s already prepared, skipping", save_folder)
        return json.loads(
            files["prep_summary.json"].read_text(encoding="utf-8")
        )
    logger.info("preparing %s into %s", data_folder, save_folder)
    save_folder.mkdir(parents=True, exist_ok=True)

    # ---- metadata and the list of utterances
    split_prompts = {
        s: _read_table(data_folder / s / "prompts.txt") for s in _SPLITS
    }
    prompts = {**split_prompts["train"], **split_prompts["test"]}
    genders: dict[str, str] = {}
    for split in _SPLITS:
        table = _read_table(data_folder / split / "genders.txt")
        genders.update({k: v.lower() for k, v in table.items()})

    _reset_cache_if_stale(wav_root, audio_options)
    skipped: list[dict[str, str]] = []
    jobs: list[_Job] = []
    first_seen: dict[str, str] = {}
    train_spks: set[str] = set()
    listed: set[str] = set()  # every WAV's utterance id, kept or not
    for split in _SPLITS:
        for path in _list_wavs(data_folder / split / "waves"):
            utt = path.stem
            listed.add(utt)
            spk, sep, rest = utt.rpartition("_")
            reason = None
            if not sep or not spk or not rest:
                reason = "bad utterance id: not <SPK>_<UTT>"
            elif utt in first_seen:
                reason = f"duplicate utterance id: also {first_seen[utt]}"
            elif split == "test" and spk in train_spks:
                reason = "test speaker also in train: kept out of test"
            if reason:
                skipped.append(_skip(path, utt, reason))
                continue
            first_seen[utt] = str(path)
            if split == "train":
                train_spks.add(spk)
            dst = wav_root / split / spk / f"{utt}.wav"
            jobs.append(_Job(split, utt, spk, str(path), str(dst)))
    for split in _SPLITS:
        waves = data_folder / split / "waves"
        for utt in sorted(set(split_prompts[split]) - listed):
            expected = waves / utt.rpartition("_")[0] / f"{utt}.wav"
            skipped.append(_skip(expected, utt, "prompt without wav"))

    # ---- audio conversion
    for spk_dir in {Path(j.dst).parent for j in jobs}:
        spk_dir.mkdir(parents=True, exist_ok=True)
    work = functools.partial(
        _process,
        sample_rate=int(sample_rate),
        trim_db=float(trim_db),
        margin=float(trim_margin),
        min_len=int(round(min_dur * sample_rate)),
    )
    results = _run(work, jobs, num_workers)
    _remove_orphans(
        wav_root,
        {j.dst for j, r in zip(jobs, results, strict=True) if not r.reason},
    )

    # ---- kept utterances
    utts: dict[str, list[_Utt]] = {s: [] for s in _SPLITS}
    converted = Counter()
    no_gender: set[str] = set()
    no_prompt = 0
    for job, res in zip(jobs, results, strict=True):
        if res.reason:
            skipped.append(_skip(job.src, job.utt_id, res.reason))
            continue
        if res.channels > 1:
            converted["downmixed"] += 1
        if res.in_rate != VIVOS_SAMPLE_RATE:
            converted["other_sample_rate"] += 1
        if job.spk_id not in genders:
            no_gender.add(job.spk_id)
        if job.utt_id not in prompts:
            no_prompt += 1
        utts[job.split].append(
            _Utt(
                job.split,
                job.utt_id,
                job.spk_id,
                genders.get(job.spk_id, "unknown"),
                prompts.get(job.utt_id, ""),
                res.raw_seconds,
                res.n_out,
            )
        )
    if no_gender:
        logger.warning(
            "%d speakers not in genders.txt, kept with gender 'unknown': %s",
            len(no_gender),
            " ".join(sorted(no_gender)),
        )
    if no_prompt:
        logger.warning(
            "%d WAVs without a prompt, kept with no words", no_prompt
        )
    if skipped:
        logger.warning(
            "%d inputs skipped, see %s", len(skipped), files["skipped.csv"]
        )
    skipped.sort(key=lambda r: (r["path"], r["utt_id"]))
    _write_csv(files["skipped.csv"], SKIPPED_FIELDS, skipped)
    for split in _SPLITS:
        if not utts[split]:
            raise VivosError(
                f"no usable {split} utterance in {data_folder} "
                f"(see {files['skipped.csv']})"
            )

    # ---- manifests and trials
    train, valid = _split_train_valid(utts["train"], valid_ratio, seed)
    parts = {"train": train, "valid": valid, "test": utts["test"]}
    seg_rows = {
        name: _segment_rows(
            part,
            "test" if name == "test" else "train",
            sample_rate,
            seg_dur,
            min_dur,
        )
        for name, part in parts.items()
    }
    for name in ("train", "valid", "test"):
        _write_csv(files[f"{name}.csv"], CSV_FIELDS, seg_rows[name])
    trials = make_trials(
        {u.utt_id: u.spk_id for u in utts["test"]}, num_trials, seed
    )
    with atomic_write(files["trials.txt"]) as f:
        f.writelines(f"{lab} {a} {b}\n" for lab, a, b in trials)

    # ---- summary
    elapsed = time.perf_counter() - t0
    raw_total = sum(u.raw_seconds for p in parts.values() for u in p)
    summary = {
        "data_folder": str(data_folder),
        "save_folder": str(save_folder.resolve()),
        "sample_rate": int(sample_rate),
        "speakers": {k: len({u.spk_id for u in p}) for k, p in parts.items()},
        "utterances": {k: len(p) for k, p in parts.items()},
        "segments": {k: len(r) for k, r in seg_rows.items()},
        "hours_before_trim": {
            **{
                k: _hours(sum(u.raw_seconds for u in p))
                for k, p in parts.items()
            },
            "total": _hours(raw_total),
        },
        "hours_after_trim": {
            **{
                k: _hours(sum(u.n_out for u in p) / sample_rate)
                for k, p in parts.items()
            },
            "total": _hours(
                sum(u.n_out for p in parts.values() for u in p) / sample_rate
            ),
        },
        "hours_in_segments": {
            k: _hours(sum(r["duration"] for r in rows))
            for k, rows in seg_rows.items()
        },
        "skipped": len(skipped),
        "skipped_by_reason": dict(
            sorted(Counter(r["reason"].split(":")[0] for r in skipped).items())
        ),
        "converted": {
            "downmixed": converted["downmixed"],
            "other_sample_rate": converted["other_sample_rate"],
        },
        "wavs_without_prompt": no_prompt,
        "speakers_without_gender": sorted(no_gender),
        "trials": {
            "target": sum(1 for t in trials if t[0] == 1),
            "nontarget": sum(1 for t in trials if t[0] == 0),
        },
        "prep_seconds": round(elapsed, 2),
        "realtime_factor": round(raw_total / max(elapsed, 1e-9), 1),
        "files": {k: str(v.resolve()) for k, v in files.items()},
    }
    write_json(files["prep_summary.json"], summary)
    save_options(save_folder, options)
    logger.info(
        "prepared %.2f h of audio (%.2f h after trimming) in %.1f s",
        summary["hours_before_trim"]["total"],
        summary["hours_after_trim"]["total"],
        elapsed,
    )
    return summary
