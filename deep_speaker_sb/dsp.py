"""Pure signal helpers of the data preparation: trimming, segmenting,
resampling.

Nothing here reads or writes files: each function takes samples (or a
length) and returns samples (or bounds), so that every corpus preparation
(:mod:`deep_speaker_sb.data.prep`) and any test can use them as they are.

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

import functools
from math import gcd

import numpy as np
from scipy.signal import firwin, resample_poly

#: Frames whose loudness reference is below this (dBFS) are "silent".
SILENCE_DBFS = -70.0
#: Frame length (seconds) of the energy-based trimming.
TRIM_FRAME_S = 0.01


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


def resample(x: np.ndarray, orig: int, new: int) -> np.ndarray:
    """Polyphase (Kaiser-windowed sinc) resampling from ``orig`` to ``new``
    Hz; float32 out, ``x`` itself when the rates are equal.

    The filter of each rate ratio is designed once per process.

    Example
    -------
    >>> x = np.ones(16000, dtype=np.float32)
    >>> y = resample(x, 16000, 8000)
    >>> y.shape, y.dtype, round(float(y[4000]), 3)
    ((8000,), dtype('float32'), 1.0)
    >>> resample(x, 8000, 8000) is x
    True
    """
    if orig == new:
        return x
    g = gcd(orig, new)
    up, down = new // g, orig // g
    y = resample_poly(x, up, down, window=_lowpass(up, down))
    return y.astype(np.float32, copy=False)
