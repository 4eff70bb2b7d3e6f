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

from speechbrain.lobes.features import MFCC, Fbank
from torch import Tensor, nn

from deep_speaker_sb.errors import ConfigError

KINDS = ("fbank", "mfcc")


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

    def forward(self, wavs: Tensor) -> Tensor:
        """Computes the features of ``wavs`` ``[batch, samples]``."""
        return self.compute(wavs)
