"""Tests of the pure signal helpers (deep_speaker_sb.dsp)."""

from __future__ import annotations

import numpy as np

from deep_speaker_sb.dsp import resample, segment_bounds, trim_silence


def test_segmentation_arithmetic():
    def durs(seconds):
        bounds = segment_bounds(int(seconds * 8000), 8000, 3.0, 1.0)
        return [(b - a) / 8000 for a, b in bounds]

    assert durs(7.5) == [3.0, 3.0, 1.5]
    assert durs(6.5) == [3.0, 3.0]
    assert durs(3.0) == [3.0]
    assert durs(1.0) == [1.0]
    assert durs(0.99) == []
    bounds = segment_bounds(60000, 8000, 3.0, 1.0)
    assert all(
        a2 == b1 for (_, b1), (a2, _) in zip(bounds, bounds[1:], strict=False)
    )


def _framed(sr: int, lead: float, tone: float, tail: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(tone * sr)) / sr
    x = np.concatenate(
        [
            np.zeros(int(lead * sr)),
            0.5 * np.sin(2 * np.pi * 300 * t),
            np.zeros(int(tail * sr)),
        ]
    )
    return (x + 1e-4 * rng.standard_normal(len(x))).astype(np.float32)


def test_trim_keeps_the_speech_and_a_margin():
    sr = 16000
    x = _framed(sr, 1.0, 2.0, 0.5)
    start, stop = trim_silence(x, sr, trim_db=40, margin=0.1)
    assert abs(start / sr - 0.9) <= 0.01
    assert abs(stop / sr - 3.1) <= 0.01
    # no trimming asked: the whole (non-silent) signal
    assert trim_silence(x, sr, trim_db=0) == (0, len(x))
    # silence (below -70 dBFS) and nothing at all
    assert trim_silence(np.full(sr, 1e-5, np.float32), sr) == (0, 0)
    assert trim_silence(np.zeros(0, np.float32), sr) == (0, 0)


def test_resample_keeps_duration_and_level():
    x = _framed(22050, 0.0, 2.0, 0.0)
    y = resample(x, 22050, 8000)
    assert y.dtype == np.float32
    assert abs(len(y) - 16000) <= 1
    # a 300 Hz tone keeps its level through the anti-aliasing filter
    mid = y[4000:12000]
    assert abs(np.sqrt(np.mean(mid**2)) - 0.5 / np.sqrt(2)) < 0.01
    # and a tone above the new Nyquist frequency is removed
    t = np.arange(22050) / 22050
    high = resample(
        (0.5 * np.sin(2 * np.pi * 6000 * t)).astype("f4"), 22050, 8000
    )
    assert np.sqrt(np.mean(high[1000:-1000] ** 2)) < 0.01
    assert resample(x, 8000, 8000) is x
