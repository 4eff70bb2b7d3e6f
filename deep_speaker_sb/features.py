"""Acoustic front end: 64-band log-mel filterbanks (or MFCC) at 8 kHz.

A thin wrapper over SpeechBrain's :class:`speechbrain.lobes.features.Fbank`
and :class:`speechbrain.lobes.features.MFCC` (no deltas, no context) whose
constructor arguments are kept in ``.config`` so the pretrained export can
rebuild it.

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

from typing import Any

import torch
from speechbrain.lobes.features import MFCC, Fbank
from torch import Tensor, nn

from deep_speaker_sb.errors import ConfigError

KINDS = ("fbank", "mfcc")


def _samples(wav_lens: Tensor, n_samples: int) -> Tensor:
    """Samples ``[batch]`` (float64) of waveforms padded to ``n_samples``."""
    return torch.round(wav_lens.to(torch.float64) * n_samples)


def zero_padding(wavs: Tensor, wav_lens: Tensor) -> Tensor:
    """``wavs`` ``[batch, samples]`` with zeros beyond each one's length.

    The centred STFT of a waveform alone reads zeros past its end; its
    last frames see the padding of a batch, so the padding must be zeros
    too (whatever an augmentation left there).

    Arguments
    ---------
    wavs : torch.Tensor
        Padded waveforms ``[batch, samples]``.
    wav_lens : torch.Tensor
        Their relative lengths ``[batch]``, in ``(0, 1]``.

    Returns
    -------
    torch.Tensor
        The waveforms, padding zeroed.

    Example
    -------
    >>> zero_padding(torch.ones(2, 4), torch.tensor([1.0, 0.5])).tolist()
    [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]]
    """
    n_samples = wavs.shape[1]
    t = torch.arange(n_samples, device=wavs.device, dtype=torch.float64)
    keep = t[None, :] < _samples(wav_lens, n_samples)[:, None]
    return wavs * keep.to(wavs.dtype)


def frame_lengths(
    wav_lens: Tensor, n_samples: int, n_frames: int, hop: int
) -> Tensor:
    """Relative lengths of the feature frames of padded waveforms.

    A waveform of ``s`` samples has ``s // hop + 1`` frames (a centred
    STFT), whatever it is padded to.  ``wav_lens * n_frames`` is not that
    count: rounded, or turned into a mask as SpeechBrain's
    ``InputNormalization`` does, it may drop the last frame or take in a
    padded one, so an utterance's embedding would depend on the longest
    one in its batch.  The lengths returned here are ``(k - 0.25) /
    n_frames`` for ``k`` frames: both rounding (the ResCNN) and
    SpeechBrain's masks (``t < length * n_frames``, the normalization,
    ECAPA) then count exactly ``k`` frames, with room for float32
    rounding; an unpadded waveform keeps all ``n_frames``.

    Arguments
    ---------
    wav_lens : torch.Tensor
        Relative lengths ``[batch]`` of the waveforms, in ``(0, 1]``.
    n_samples : int
        Samples of the padded waveforms.
    n_frames : int
        Frames of their features.
    hop : int
        Hop of the STFT, in samples.

    Returns
    -------
    torch.Tensor
        Relative lengths ``[batch]`` of the features (``wav_lens``'
        dtype).

    Example
    -------
    >>> lens = frame_lengths(torch.tensor([1.0, 0.5]), 16000, 201, 80)
    >>> torch.round(lens * 201).tolist()  # 8000 samples: 101 frames
    [201.0, 101.0]
    """
    frames = torch.floor(_samples(wav_lens, n_samples) / hop) + 1
    frames = torch.clamp(frames, min=1, max=n_frames)
    return ((frames - 0.25) / n_frames).to(wav_lens.dtype)


class Features(nn.Module):
    """Waveforms ``[batch, samples]`` -> features ``[batch, time, n_feats]``.

    25 ms windows every 10 ms (SpeechBrain's defaults).

    Arguments
    ---------
    kind : str
        ``"fbank"`` (log-mel filterbanks) or ``"mfcc"``.
    sample_rate : int
        Sampling rate of the waveforms.
    n_mels : int
        Mel filters (the feature size for ``"fbank"``).
    n_mfcc : int
        Cepstral coefficients (the feature size for ``"mfcc"``).

    Example
    -------
    >>> import torch
    >>> fb = Features("fbank", sample_rate=8000, n_mels=64)
    >>> fb(torch.rand(2, 8000)).shape
    torch.Size([2, 101, 64])
    >>> Features("mfcc", n_mfcc=40)(torch.rand(2, 8000)).shape
    torch.Size([2, 101, 40])
    >>> fb.hop  # samples between frames
    80
    """

    def __init__(
        self,
        kind: str = "fbank",
        sample_rate: int = 8000,
        n_mels: int = 64,
        n_mfcc: int = 40,
    ):
        super().__init__()
        if kind not in KINDS:
            raise ConfigError(
                f"feature kind must be one of {KINDS}, got {kind!r}"
            )
        self.config: dict[str, Any] = {
            "kind": kind,
            "sample_rate": int(sample_rate),
            "n_mels": int(n_mels),
            "n_mfcc": int(n_mfcc),
        }
        if kind == "fbank":
            self.compute = Fbank(
                sample_rate=sample_rate, n_mels=n_mels, deltas=False
            )
            self.n_features = int(n_mels)
        else:
            if n_mfcc > n_mels:
                raise ConfigError(
                    f"n_mfcc ({n_mfcc}) must not exceed n_mels ({n_mels})"
                )
            self.compute = MFCC(
                sample_rate=sample_rate,
                n_mels=n_mels,
                n_mfcc=n_mfcc,
                deltas=False,
                context=False,
            )
            self.n_features = int(n_mfcc)
        #: STFT hop in samples (see :func:`frame_lengths`).
        self.hop = int(self.compute.compute_STFT.hop_length)

    def forward(self, wavs: Tensor) -> Tensor:
        """Computes the features of ``wavs`` ``[batch, samples]``."""
        return self.compute(wavs)
