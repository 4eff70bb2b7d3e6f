"""Is there speech in this audio?  The check before an embedding is trusted.

An embedding model maps *anything* to a unit vector, and silence or noise
tends to land near some speaker (the oldest complaint about Deep Speaker:
3 s of digital silence was identified as a test speaker at cosine 0.79).
:func:`check_speech` refuses audio that cannot be speech before it is
embedded:

- too little signal: fewer than ``min_speech_seconds`` of 25 ms frames at
  or above ``min_level_dbfs`` in the band above 150 Hz (digital silence,
  a DC offset or hum, a file of one sample);
- no syllable-rate modulation: speech rises and falls by tens of dB
  between syllables and pauses, while stationary noise (white, pink,
  clipped), tones and hum stay within a few dB, so the spread between the
  10th and the 95th percentile of the active frames' levels must reach
  ``min_dynamic_db``.

The defaults are documented in the README; an export may set its own
(``speech_check`` in ``config.json``).

The check is numpy only (it takes numpy arrays or torch tensors), so that
the torch-free runtime (:mod:`deep_speaker_sb.runtime`) runs the very same
check as ``DeepSpeaker``; this module imports torch only inside
:func:`nonspeech_signal`.

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from deep_speaker_sb.errors import DataError

if TYPE_CHECKING:
    import torch

#: Frequencies below this are left out of the levels (DC, hum, drift).
HIGHPASS_HZ = 150.0


class NoSpeechError(DataError):
    """The audio holds too little speech to be embedded reliably."""


@dataclasses.dataclass(frozen=True)
class SpeechCheck:
    """The thresholds of :func:`check_speech`.

    Attributes
    ----------
    min_speech_seconds : float
        Least duration of active frames.
    min_level_dbfs : float
        A 25 ms frame is active at this RMS level (dB full scale) or above.
    min_dynamic_db : float
        Least spread (95th - 10th percentile) of the active frames' levels.
    """

    min_speech_seconds: float = 0.5
    min_level_dbfs: float = -55.0
    min_dynamic_db: float = 8.0

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> SpeechCheck:
        """From a ``speech_check`` dict (missing keys: the defaults)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(
            **{k: float(v) for k, v in (config or {}).items() if k in fields}
        )


def as_signal(wav: Any) -> np.ndarray:
    """Mono audio as a float64 numpy vector (from numpy, a list or a torch
    tensor on any device; torch itself is not imported).

    Example
    -------
    >>> as_signal([[0.5], [-1]]).tolist()
    [0.5, -1.0]
    """
    if hasattr(wav, "detach"):  # a torch tensor
        wav = wav.detach().cpu().numpy()
    return np.asarray(wav, dtype=np.float64).ravel()


def speech_statistics(
    wav: Any, sample_rate: int, check: SpeechCheck
) -> tuple[float, float]:
    """Seconds of active frames and the spread of their levels (dB).

    Arguments
    ---------
    wav : numpy.ndarray or torch.Tensor
        Mono audio ``[time]``, floats in [-1, 1].
    sample_rate : int
        Its sample rate.
    check : SpeechCheck
        The level that makes a frame active.

    Returns
    -------
    (active_seconds, dynamic_db)

    Example
    -------
    >>> sr = 8000
    >>> t = np.arange(2 * sr) / sr
    >>> syllables = np.sin(2 * np.pi * 4 * t).clip(min=0.02)
    >>> speechy = 0.3 * np.sin(2 * np.pi * 200 * t) * syllables
    >>> seconds, spread = speech_statistics(speechy, sr, SpeechCheck())
    >>> seconds > 1.0, spread > 20
    (True, True)
    >>> speech_statistics(np.zeros(sr), sr, SpeechCheck())
    (0.0, 0.0)
    """
    frame = max(1, round(0.025 * sample_rate))
    hop = max(1, round(0.010 * sample_rate))
    x = as_signal(wav)
    if len(x) < frame:
        return 0.0, 0.0
    # the speech band only: a DC offset, hum and slow drift are not signal
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), d=1.0 / sample_rate)
    spectrum[freqs < HIGHPASS_HZ] = 0
    x = np.fft.irfft(spectrum, n=len(x))
    frames = sliding_window_view(x, frame)[::hop]  # a view: no copy
    power = np.einsum("ij,ij->i", frames, frames) / frame
    level = 10 * np.log10(power + 1e-20)
    active = level[level >= check.min_level_dbfs]
    if len(active) == 0:
        return 0.0, 0.0
    seconds = float(len(active) * hop / sample_rate)
    low, high = np.quantile(active, [0.10, 0.95])
    return seconds, float(high - low)


def check_speech(
    wav: Any,
    sample_rate: int,
    check: SpeechCheck,
    name: str = "the audio",
) -> None:
    """Raises :class:`NoSpeechError` when ``wav`` cannot be speech.

    Arguments
    ---------
    wav : numpy.ndarray or torch.Tensor
        Mono audio ``[time]``, floats in [-1, 1].
    sample_rate : int
        Its sample rate.
    check : SpeechCheck
        The thresholds.
    name : str
        What the message calls the audio (a file name).

    Example
    -------
    >>> check_speech(np.zeros(16000), 8000, SpeechCheck(), "zeros.wav")
    Traceback (most recent call last):
    ...
    deep_speaker_sb.speech.NoSpeechError: zeros.wav holds no speech: ...
    >>> noise = 0.1 * np.random.default_rng(0).standard_normal(16000)
    >>> check_speech(noise, 8000, SpeechCheck(), "noise.wav")
    Traceback (most recent call last):
    ...
    deep_speaker_sb.speech.NoSpeechError: noise.wav holds no speech: ...
    """
    seconds, spread = speech_statistics(wav, sample_rate, check)
    if seconds < check.min_speech_seconds:
        raise NoSpeechError(
            f"{name} holds no speech: {seconds:.2f} s above "
            f"{check.min_level_dbfs:g} dBFS (needs "
            f"{check.min_speech_seconds:g} s)"
        )
    if spread < check.min_dynamic_db:
        raise NoSpeechError(
            f"{name} holds no speech: its level varies by {spread:.1f} dB "
            f"(speech varies by more than {check.min_dynamic_db:g} dB; "
            "steady noise, tones and hum do not)"
        )


#: The kinds of :func:`nonspeech_signal`.
NONSPEECH_KINDS = (
    "silence",
    "white noise",
    "pink noise",
    "clipped noise",
    "tone",
    "DC",
    "hum",
    "one sample",
)


def nonspeech_signal(
    kind: str, n_samples: int, sample_rate: int, rng: np.random.Generator
) -> torch.Tensor:
    """A generated non-speech signal (random level and frequency).

    What the speech check must refuse, and what the softmax stage's
    ``nonspeech_weight`` option trains the model to keep away from
    speakers.

    Arguments
    ---------
    kind : str
        One of :data:`NONSPEECH_KINDS`: digital silence, white or pink
        noise (level -40 to -6 dBFS), clipped full-scale noise, a tone
        (100-3000 Hz), a DC offset, 50/60 Hz hum on a DC offset, or a
        file of one sample.
    n_samples : int
        Its length (``"one sample"`` is always 1).
    sample_rate : int
        The sample rate.
    rng : numpy.random.Generator
        The random draws.

    Returns
    -------
    torch.Tensor
        ``[n_samples]`` float32 in [-1, 1].

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> [tuple(nonspeech_signal(k, 800, 8000, rng).shape)
    ...  for k in ("tone", "one sample")]
    [(800,), (1,)]
    >>> bool(nonspeech_signal("clipped noise", 800, 8000, rng).abs().max()
    ...      <= 1)
    True
    """
    t = np.arange(n_samples) / sample_rate
    level = 10 ** rng.uniform(-2, -0.3)
    if kind == "silence":
        x = np.zeros_like(t)
    elif kind == "white noise":
        x = level * rng.standard_normal(len(t))
    elif kind == "pink noise":
        spec = np.fft.rfft(rng.standard_normal(len(t)))
        spec /= np.sqrt(np.maximum(np.arange(len(spec)), 1))
        x = np.fft.irfft(spec, len(t))
        x = level * x / np.abs(x).max()
    elif kind == "clipped noise":
        x = np.clip(3 * rng.standard_normal(len(t)), -1, 1)
    elif kind == "tone":
        x = level * np.sin(2 * np.pi * rng.uniform(100, 3000) * t)
    elif kind == "DC":
        x = np.full_like(t, rng.uniform(-0.5, 0.5))
    elif kind == "hum":
        f = rng.choice([50.0, 60.0])
        x = 0.1 + level * np.sin(2 * np.pi * f * t)
    elif kind == "one sample":
        x = np.array([level])
    else:
        raise ValueError(f"unknown non-speech kind {kind!r}")
    import torch  # here only: the speech check itself needs no torch

    return torch.from_numpy(x.astype(np.float32))
