"""Step 2 of the preparation: convert and trim every listed utterance.

Every source file is read, mixed down to mono, resampled to
``sample_rate`` (:func:`deep_speaker_sb.dsp.resample`), trimmed of leading
and trailing silence (:func:`deep_speaker_sb.dsp.trim_silence`) and
cached (:mod:`deep_speaker_sb.data.cache`), by a pool of worker processes
(:func:`convert_all`); unreadable, empty or silent inputs and utterances
shorter than ``min_dur`` after trimming are skipped with their reason.
AAC inputs (``.m4a``) are decoded by ``ffmpeg``
(:func:`decode_with_ffmpeg`).  Only a bad *input* is skipped: an error
writing the cache raises :class:`~deep_speaker_sb.errors.OutputError`.

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import shutil
import subprocess
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from deep_speaker_sb.data.cache import (
    WAV_FOLDER,
    remove_orphans,
    wav_relpath,
    write_wav,
    writing,
)
from deep_speaker_sb.data.inputs import PrepOptions, Skipped, SourceUtterance
from deep_speaker_sb.dsp import SILENCE_DBFS, resample, trim_silence
from deep_speaker_sb.errors import ConfigError, UserError

#: Inputs decoded by ffmpeg (libsndfile does not read AAC).
FFMPEG_SUFFIXES = (".m4a", ".aac")


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
            with writing(job.dst):
                write_wav(job.dst, y, sample_rate)
    if res.n_out < min_len:
        res.reason = "too short after trimming: {:.2f} s < {:g} s".format(
            res.n_out / sample_rate, min_len / sample_rate
        )
        return _forget(job, res)
    return res


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
        with writing(job.dst):
            write_wav(job.dst, y[start:stop], sample_rate)
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


def _forget(job: _Job, res: _Result) -> _Result:
    """Removes the cached WAV of a skipped utterance, if any."""
    with writing(job.dst), contextlib.suppress(FileNotFoundError):
        os.remove(job.dst)
    return res


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


def convert_all(
    utterances: Sequence[SourceUtterance],
    save_folder: Path,
    options: PrepOptions,
) -> tuple[list[ConvertedUtterance], list[Skipped]]:
    """Step 2 over a listing whose WAV cache is up to date (or empty)."""
    jobs = [_Job(u.src, str(save_folder / wav_relpath(u))) for u in utterances]
    for spk_dir in sorted({Path(j.dst).parent for j in jobs}):
        with writing(spk_dir):
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
    with writing(save_folder / WAV_FOLDER):
        remove_orphans(
            save_folder / WAV_FOLDER,
            {str(save_folder / wav_relpath(u.source)) for u in kept},
        )
    return kept, skipped
