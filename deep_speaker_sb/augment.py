"""On-the-fly waveform augmentation at 8 kHz, with nothing to download.

Both training stages pass each training batch through SpeechBrain's
``speechbrain.augment.augmenter.Augmenter`` (``wav_augment`` in the YAMLs;
:class:`deep_speaker_sb.brains.base.EmbeddingBrain` applies it).  What
its augmentations read from disk is made here, once, by
:func:`prepare_augmentation`, into ``<prep_folder>/augment/``:

- ``noise.csv``: white, pink and brown noise (:func:`colored_noise`), for
  ``AddNoise``;
- ``babble.csv``: babble, each file the sum of a few training speakers'
  utterances of ``train.csv``, for a second ``AddNoise``;
- ``rirs.csv``: simulated room impulse responses (:func:`simulate_rir`:
  direct path, early reflections and an exponentially decaying late tail),
  for ``AddReverb``; optionally (``image_rirs``) also responses of
  shoebox rooms by the image method (:func:`image_method_rir`).

The CSVs are in the format of SpeechBrain's ``ExtendedCSVDataset``
(``ID, duration, wav, wav_format, wav_opts``) and their paths start with
``$augment_folder``, which ``AddNoise``/``AddReverb`` replace
(``replacements``), so the folder can move.  The telephone channel is two
small modules with the call signature of the ``speechbrain.augment`` ones:
:class:`BandLimit` (300-3400 Hz) and :class:`TelephoneCodec` (G.711
mu-law / A-law, optionally GSM 06.10, MP3, Opus, through libsndfile).

The channel simulation (``channel_sim`` in the YAMLs, off by default:
not yet measured) chains more of them, applied to every training batch
after ``wav_augment``: :class:`RandomEQ` (spectral tilt and a smooth
random curve), :class:`RandomLevel` (random level, clipped at full
scale), :class:`LowBitrateCodec` (a lower sample rate and coarse mu-law)
and :class:`LoudnessNorm`.

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import scipy.signal
import soundfile as sf
import torch
from speechbrain.augment.time_domain import Resample
from speechbrain.utils.logger import get_logger
from torch import Tensor

from deep_speaker_sb.dataio import read_manifest, speaker_utterances, utterances
from deep_speaker_sb.errors import ConfigError, DataError, MissingFileError
from deep_speaker_sb.utils import (
    OPTIONS_FILE,
    Pathlike,
    atomic_write,
    outputs_up_to_date,
    save_options,
)

logger = get_logger(__name__)

#: Bumped when the generated files change for the same options.
AUGMENT_VERSION = 1
#: The placeholder for the augmentation folder in the CSVs' ``wav`` column
#: (``AddNoise``/``AddReverb`` take ``replacements: {augment_folder: ...}``).
FOLDER_KEY = "augment_folder"
#: File names inside the augmentation folder.
NOISE_CSV, BABBLE_CSV, RIR_CSV = "noise.csv", "babble.csv", "rirs.csv"
#: Spectral exponents of the generated noises: power ~ 1 / f**exponent.
NOISE_COLORS = {"white": 0.0, "pink": 1.0, "brown": 2.0}
#: RMS level of the written noise and babble (``AddNoise`` rescales them).
LEVEL = 0.1
#: soundfile ``(format, subtype)`` of the codecs of :class:`TelephoneCodec`.
CODECS = {
    # headerless (RAW): a WAV header was once misread on the way back
    # ("Data is in WAVPACK format") and stopped a training run
    "mulaw": ("RAW", "ULAW"),  # G.711 mu-law (North America, Japan)
    "alaw": ("RAW", "ALAW"),  # G.711 A-law (Europe, Vietnam, ...)
    "gsm": ("RAW", "GSM610"),  # GSM 06.10 full rate (8 kHz)
    "mp3": ("MP3", "MPEG_LAYER_III"),
    "opus": ("OGG", "OPUS"),
}


@dataclasses.dataclass(frozen=True)
class AugmentationFiles:
    """The CSVs :func:`prepare_augmentation` writes."""

    noise_csv: Path
    babble_csv: Path
    rir_csv: Path


def colored_noise(
    n: int,
    exponent: float,
    rng: np.random.Generator,
    *,
    sample_rate: int = 8000,
    low_hz: float = 20.0,
) -> np.ndarray:
    """Gaussian noise with power spectrum ``~ 1 / f**exponent``, unit RMS.

    ``exponent`` 0 is white, 1 pink, 2 brown noise.  Below ``low_hz`` the
    spectrum stays flat (and there is no DC), so that brown noise is not
    all inaudible rumble.

    Arguments
    ---------
    n : int
        Number of samples.
    exponent : float
        Spectral exponent.
    rng : numpy.random.Generator
        The random source.
    sample_rate : int
        Sample rate (Hz), for ``low_hz``.
    low_hz : float
        Frequency below which the spectrum is flat.

    Returns
    -------
    numpy.ndarray
        ``[n]`` float64 samples with RMS 1.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> x = colored_noise(8000, 1.0, rng)
    >>> x.shape, round(float(np.sqrt(np.mean(x**2))), 6)
    ((8000,), 1.0)
    >>> def octave_power(x, f):  # mean power between f and 2 f Hz
    ...     p = np.abs(np.fft.rfft(x)) ** 2
    ...     return p[f : 2 * f].sum()
    >>> pink = colored_noise(80000, 1.0, rng)   # equal power per octave
    >>> bool(0.7 < octave_power(pink, 100) / octave_power(pink, 1000) < 1.4)
    True
    >>> brown = colored_noise(80000, 2.0, rng)  # -6 dB per octave...
    >>> bool(octave_power(brown, 100) / octave_power(brown, 1000) > 5)
    True
    """
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, d=1.0 / sample_rate)
    spec *= np.maximum(freqs, low_hz) ** (-exponent / 2.0)
    spec[0] = 0.0
    x = np.fft.irfft(spec, n)
    return x / max(float(np.sqrt(np.mean(x**2))), 1e-12)


def simulate_rir(
    sample_rate: int,
    rt60: float,
    drr_db: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """A simulated room impulse response (exponentially decaying noise).

    A direct path (sample 0), 4-12 early reflections in the first 50 ms
    and a late tail of Gaussian noise that decays by 60 dB in ``rt60``
    seconds, slightly low-passed (air and wall absorption), scaled so that
    the energy of the direct path over the rest is ``drr_db``.

    Arguments
    ---------
    sample_rate : int
        Sample rate (Hz).
    rt60 : float
        Reverberation time (s): the length of the response.
    drr_db : float
        Direct-to-reverberant energy ratio (dB).
    rng : numpy.random.Generator
        The random source.

    Returns
    -------
    numpy.ndarray
        ``[round(rt60 * sample_rate)]`` samples, peak 0.9 at sample 0.

    Example
    -------
    >>> h = simulate_rir(8000, 0.5, 3.0, np.random.default_rng(0))
    >>> h.shape, int(np.argmax(np.abs(h))), round(float(h[0]), 3)
    ((4000,), 0, 0.9)
    >>> drr = 10 * np.log10(h[0] ** 2 / np.sum(h[1:] ** 2))
    >>> round(float(drr), 3)
    3.0
    >>> tail = np.abs(h[2000:]).max() / np.abs(h[400:800]).max()
    >>> bool(tail < 0.1)  # decays
    True
    """
    n = max(round(rt60 * sample_rate), 2)
    t = np.arange(n) / sample_rate
    envelope = np.exp(-6.908 * t / rt60)  # ln(1000): -60 dB at rt60
    tail = rng.standard_normal(n) * envelope
    tail = scipy.signal.lfilter([1.0 - 0.4], [1.0, -0.4], tail)
    tail *= np.minimum(t / 0.005, 1.0)  # builds up over 5 ms
    n_early = int(rng.integers(4, 13))
    early = rng.integers(
        max(1, round(0.001 * sample_rate)),
        max(2, min(n, round(0.05 * sample_rate))),
        size=n_early,
    )
    signs = rng.choice([-1.0, 1.0], size=n_early)
    tail[early] += signs * rng.uniform(0.3, 0.8, n_early) * envelope[early]
    tail[0] = 0.0
    gain = np.sqrt(np.sum(tail**2) * 10 ** (drr_db / 10.0))
    h = tail / max(gain, 1e-12)
    peak = np.abs(h).max()
    if peak >= 1.0:  # a loud tail: the direct path stays the peak
        h *= 0.999 / peak  # (and the DRR rises a little)
    h[0] = 1.0
    return 0.9 * h


#: Speed of sound (m/s) of :func:`image_method_rir`.
SPEED_OF_SOUND = 343.0


def image_method_rir(
    sample_rate: int,
    room: Sequence[float],
    source: Sequence[float],
    mic: Sequence[float],
    rt60: float,
) -> np.ndarray:
    """A room impulse response of a shoebox room by the image method.

    Allen and Berkley's image-source model: every mirror image of the
    source in the six walls, up to the distance sound travels in ``rt60``
    seconds, adds ``beta ** reflections / distance`` at its delay (linear
    interpolation between the two nearest samples); all walls reflect
    ``beta = sqrt(1 - alpha)`` of the pressure, with the absorption
    ``alpha`` that gives ``rt60`` by Sabine's formula.  The response
    starts at the direct path and is scaled to peak 0.9 there.

    Arguments
    ---------
    sample_rate : int
        Sample rate (Hz).
    room : (float, float, float)
        The room's length, width and height (m).
    source, mic : (float, float, float)
        Positions of the talker and the microphone inside the room (m).
    rt60 : float
        Reverberation time (s): the length of the response.

    Returns
    -------
    numpy.ndarray
        ``[round(rt60 * sample_rate)]`` samples.

    Raises
    ------
    ConfigError
        If a position is outside the room, or ``rt60`` is shorter than
        the room's walls can absorb (Sabine, alpha < 1).

    Example
    -------
    >>> h = image_method_rir(8000, (5, 4, 3), (1, 1, 1.5), (3, 2.5, 1.2), 0.4)
    >>> h.shape, int(np.argmax(np.abs(h))), round(float(h[0]), 3)
    ((3200,), 0, 0.9)
    >>> early, late = np.abs(h[:800]).max(), np.abs(h[2400:]).max()
    >>> bool(late < 0.1 * early)  # decays
    True
    """
    room_m = np.asarray(room, dtype=float)
    src, rec = np.asarray(source, float), np.asarray(mic, float)
    if not (
        (room_m > 0).all()
        and (src > 0).all()
        and (rec > 0).all()
        and (src < room_m).all()
        and (rec < room_m).all()
    ):
        raise ConfigError(
            f"source {source} and mic {mic} must lie inside the room {room}"
        )
    volume = float(np.prod(room_m))
    lx, ly, lz = room_m
    surface = 2 * (lx * ly + lx * lz + ly * lz)
    alpha = 0.161 * volume / (surface * rt60)
    if not 0 < alpha < 1:
        raise ConfigError(
            f"rt60 {rt60} s is too short for a {room} m room (Sabine "
            f"absorption {alpha:.2f} >= 1)"
        )
    beta = np.sqrt(1.0 - alpha)
    n = max(round(rt60 * sample_rate), 2)
    reach = SPEED_OF_SOUND * n / sample_rate  # metres within the response
    axes = []  # per axis: image offsets from the mic and reflections
    for size, s, m in zip(room_m, src, rec, strict=True):
        order = int(np.ceil(reach / (2 * size))) + 1
        k = np.arange(-order, order + 1)
        offsets = np.concatenate([2 * k * size + s - m, 2 * k * size - s - m])
        bounces = np.concatenate([2 * np.abs(k), np.abs(2 * k - 1)])
        axes.append((offsets, bounces))
    (dy, ry), (dz, rz) = axes[1], axes[2]
    yz = (dy[:, None] ** 2 + dz[None, :] ** 2).ravel()
    ryz = (ry[:, None] + rz[None, :]).ravel()
    h = np.zeros(n + 2)
    direct = float(np.linalg.norm(src - rec))
    for dx, rx in zip(*axes[0], strict=True):
        dist = np.sqrt(dx**2 + yz)
        delay = (dist - direct) / SPEED_OF_SOUND * sample_rate
        inside = delay < n
        delay, dist = delay[inside], dist[inside]
        gain = beta ** (rx + ryz[inside]) * direct / dist
        first = np.floor(delay).astype(int)
        frac = delay - first
        h += np.bincount(first, gain * (1 - frac), minlength=n + 2)[: n + 2]
        h += np.bincount(first + 1, gain * frac, minlength=n + 2)[: n + 2]
    h = h[:n]
    return 0.9 * h / np.abs(h).max()


class BandLimit(torch.nn.Module):
    """A telephone band: linear-phase FIR band-pass, 300-3400 Hz.

    Same call as the time-domain augmentations of ``speechbrain.augment``
    (``forward(waveforms)``), so ``Augmenter`` can chain it.

    Arguments
    ---------
    sample_rate : int
        Sample rate of the waveforms (Hz).
    low_hz, high_hz : float
        The pass band (Hz).
    num_taps : int
        FIR length (odd; 101 taps at 8 kHz: transitions about 150 Hz wide).

    Example
    -------
    >>> t = torch.arange(8000) / 8000
    >>> tones = torch.stack([torch.sin(2 * torch.pi * f * t)
    ...                      for f in (100.0, 1000.0, 3800.0)])
    >>> out = BandLimit(8000)(tones)
    >>> out.shape
    torch.Size([3, 8000])
    >>> gain_db = 20 * torch.log10(out[:, 500:-500].std(1)
    ...                            / tones[:, 500:-500].std(1))
    >>> [round(float(g)) for g in gain_db]  # 100 Hz, 1 kHz, 3.8 kHz
    [-52, 0, -64]
    """

    def __init__(
        self,
        sample_rate: int = 8000,
        low_hz: float = 300.0,
        high_hz: float = 3400.0,
        num_taps: int = 101,
    ):
        super().__init__()
        if not 0 < low_hz < high_hz < sample_rate / 2:
            raise ConfigError(
                f"band limits need 0 < low_hz < high_hz < {sample_rate / 2}"
                f" (half the sample rate), got {low_hz}, {high_hz}"
            )
        if num_taps % 2 == 0:
            raise ConfigError(f"num_taps must be odd, got {num_taps}")
        taps = scipy.signal.firwin(
            num_taps, [low_hz, high_hz], pass_zero=False, fs=sample_rate
        )
        self.kernel = torch.tensor(taps, dtype=torch.float32).view(1, 1, -1)

    def forward(self, waveforms: Tensor) -> Tensor:
        """``[batch, time]`` -> band-limited ``[batch, time]``."""
        kernel = self.kernel.to(waveforms)
        out = torch.nn.functional.conv1d(
            waveforms.unsqueeze(1), kernel, padding=kernel.shape[-1] // 2
        )
        return out.squeeze(1)


class TelephoneCodec(torch.nn.Module):
    """Encodes and decodes each waveform with a telephone codec.

    One codec of ``codecs``, drawn with Python's ``random`` per batch (as
    SpeechBrain's ``CodecAugment`` does), round trip in memory through
    libsndfile (``soundfile``).  Same call as the time-domain
    augmentations of ``speechbrain.augment``, so ``Augmenter`` can chain
    it.  The waveforms are clipped to [-1, 1] first, as a codec would.

    Arguments
    ---------
    sample_rate : int
        Sample rate of the waveforms (Hz).
    codecs : sequence of str
        Names from :data:`CODECS`: ``mulaw`` and ``alaw`` (G.711, cheap),
        ``gsm`` (GSM 06.10, 8 kHz only), ``mp3``, ``opus`` (slow on CPU).

    Example
    -------
    >>> x = 0.3 * torch.sin(torch.arange(8000) / 3.0).repeat(2, 1)
    >>> codec = TelephoneCodec(8000, codecs=["alaw"])
    >>> y = codec(x)
    >>> y.shape, bool((y - x).abs().max() < 0.01), bool((y != x).any())
    (torch.Size([2, 8000]), True, True)
    >>> TelephoneCodec(codecs=["amr"])
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.ConfigError: unknown codec 'amr'; ...
    """

    def __init__(
        self, sample_rate: int = 8000, codecs: Sequence[str] = ("mulaw", "alaw")
    ):
        super().__init__()
        for name in codecs:
            if name not in CODECS:
                raise ConfigError(
                    f"unknown codec {name!r}; choose from {', '.join(CODECS)}"
                )
        if not codecs:
            raise ConfigError("TelephoneCodec needs at least one codec")
        self.sample_rate = sample_rate
        self.codecs = list(codecs)

    def forward(self, waveforms: Tensor) -> Tensor:
        """``[batch, time]`` -> decoded ``[batch, time]``.

        A row the codec library fails to round-trip is kept as it came
        (clipped), with a warning: an augmentation never stops training.
        """
        fmt, subtype = CODECS[random.choice(self.codecs)]
        x = waveforms.detach().float().clamp(-1.0, 1.0).cpu().numpy()
        out = x.copy()
        for i, row in enumerate(x):
            try:
                decoded = self._round_trip(row, fmt, subtype)
            except (sf.LibsndfileError, RuntimeError) as exc:
                logger.warning(
                    "codec %s failed on one waveform (kept unchanged): %s",
                    subtype,
                    exc,
                )
                continue
            n = min(len(decoded), len(row))
            out[i] = 0.0
            out[i, :n] = decoded[:n]
        return torch.from_numpy(out).to(waveforms)

    def _round_trip(
        self, row: np.ndarray, fmt: str, subtype: str
    ) -> np.ndarray:
        """``row`` encoded with one codec in memory and decoded back."""
        buffer = io.BytesIO()
        sf.write(buffer, row, self.sample_rate, format=fmt, subtype=subtype)
        buffer.seek(0)
        if fmt == "RAW":  # no header: say what the bytes are
            raw = dict(samplerate=self.sample_rate, channels=1)
            decoded, _ = sf.read(
                buffer, dtype="float32", format=fmt, subtype=subtype, **raw
            )
        else:
            decoded, _ = sf.read(buffer, dtype="float32")
        return decoded


def _rms(waveforms: Tensor, lengths: Tensor | None) -> Tensor:
    """RMS ``[batch]`` of each row over its valid samples."""
    keep = torch.ones_like(waveforms)
    if lengths is not None:
        n = torch.round(lengths.to(waveforms) * waveforms.shape[1])
        t = torch.arange(waveforms.shape[1], device=waveforms.device)
        keep = (t[None, :] < n[:, None]).to(waveforms)
    power = (waveforms**2 * keep).sum(1) / keep.sum(1).clamp(min=1.0)
    return power.sqrt()


class RandomEQ(torch.nn.Module):
    """A random handset / line colouring: tilt plus a smooth random curve.

    Each row gets its own zero-phase equalizer (applied in the frequency
    domain, the row padded to twice its length so that nothing wraps
    around): a spectral tilt drawn in ``[-tilt_db, tilt_db]`` dB per
    octave around 1 kHz, plus gains drawn in ``[-ripple_db, ripple_db]``
    at ``n_points`` frequencies spaced evenly in octaves from 100 Hz to
    half the sample rate, interpolated linearly in octaves.  The RMS of
    each row is kept (the colour changes, not the level).  Draws from
    torch's random generator.

    Arguments
    ---------
    sample_rate : int
        Sample rate of the waveforms (Hz).
    tilt_db : float
        Largest tilt, dB per octave.
    ripple_db : float
        Largest gain of the random curve (dB).
    n_points : int
        Frequencies of the random curve (at least 2).

    Example
    -------
    >>> t = torch.arange(8000) / 8000
    >>> tones = torch.sin(2 * torch.pi * 200 * t) + torch.sin(
    ...     2 * torch.pi * 3000 * t)
    >>> eq = RandomEQ(8000, tilt_db=6.0, ripple_db=0.0)
    >>> _ = torch.manual_seed(0)
    >>> out = eq(tones.repeat(3, 1))
    >>> out.shape, bool(torch.isfinite(out).all())
    (torch.Size([3, 8000]), True)
    >>> spec = torch.fft.rfft(out).abs()  # bins: 1 Hz
    >>> ratio_db = 20 * torch.log10(spec[:, 3000] / spec[:, 200])
    >>> [round(float(r)) for r in ratio_db]  # 3.9 octaves x each tilt
    [0, 13, -19]
    """

    def __init__(
        self,
        sample_rate: int = 8000,
        tilt_db: float = 3.0,
        ripple_db: float = 6.0,
        n_points: int = 6,
    ):
        super().__init__()
        if tilt_db < 0 or ripple_db < 0 or n_points < 2:
            raise ConfigError(
                "RandomEQ needs tilt_db >= 0, ripple_db >= 0 and n_points "
                f">= 2, got {tilt_db}, {ripple_db}, {n_points}"
            )
        self.sample_rate = sample_rate
        self.tilt_db = float(tilt_db)
        self.ripple_db = float(ripple_db)
        self.n_points = int(n_points)

    def forward(self, waveforms: Tensor) -> Tensor:
        """``[batch, time]`` -> equalized ``[batch, time]``."""
        batch, n = waveforms.shape
        x = waveforms.float()
        freqs = torch.fft.rfftfreq(2 * n, d=1.0 / self.sample_rate)
        octaves = torch.log2(freqs.clamp(min=50.0) / 1000.0).to(x.device)
        tilt = (2 * torch.rand(batch, 1) - 1) * self.tilt_db
        gain_db = tilt.to(x.device) * octaves[None, :]
        if self.ripple_db > 0:
            top = np.log2(self.sample_rate / 2 / 1000.0)
            points = torch.linspace(np.log2(0.1), top, self.n_points)
            gains = (2 * torch.rand(batch, self.n_points) - 1) * self.ripple_db
            pos = (octaves.cpu() - points[0]) / (points[1] - points[0])
            pos = pos.clamp(0, self.n_points - 1)
            low = pos.floor().long().clamp(max=self.n_points - 2)
            frac = pos - low
            curve = gains[:, low] * (1 - frac) + gains[:, low + 1] * frac
            gain_db = gain_db + curve.to(x.device)
        spec = torch.fft.rfft(x, n=2 * n) * 10 ** (gain_db / 20)
        out = torch.fft.irfft(spec, n=2 * n)[:, :n]
        scale = _rms(x, None) / _rms(out, None).clamp(min=1e-12)
        return (out * scale[:, None]).to(waveforms)


class RandomLevel(torch.nn.Module):
    """A random recording level, clipped at full scale.

    Each row is scaled to an RMS (over its valid samples) drawn per row in
    ``[level_db_low, level_db_high]`` dB full scale, then clipped to
    ``[-clip, clip]`` (an overloaded converter: speech louder than about
    -15 dBFS RMS starts to clip).  Draws from torch's random generator.

    Arguments
    ---------
    level_db_low, level_db_high : float
        Range of the RMS level (dB full scale).
    clip : float, optional
        Clipping level; None: no clipping.

    Example
    -------
    >>> x = 0.1 * torch.sin(torch.arange(8000) / 3.0).repeat(2, 1)
    >>> loud = RandomLevel(0.0, 0.0)(x, torch.tensor([1.0, 0.5]))
    >>> float(loud.abs().max())  # RMS 0 dBFS: the sine clips at 1
    1.0
    """

    def __init__(
        self,
        level_db_low: float = -40.0,
        level_db_high: float = 0.0,
        clip: float | None = 1.0,
    ):
        super().__init__()
        if level_db_low > level_db_high or (clip is not None and clip <= 0):
            raise ConfigError(
                "level_db_low must not exceed level_db_high, and clip must "
                f"be positive, got {level_db_low}, {level_db_high}, {clip}"
            )
        self.low, self.high, self.clip = level_db_low, level_db_high, clip

    def forward(self, waveforms: Tensor, lengths: Tensor) -> Tensor:
        """``[batch, time]`` and relative lengths -> ``[batch, time]``."""
        level = self.low + (self.high - self.low) * torch.rand(len(waveforms))
        target = 10 ** (level.to(waveforms) / 20)
        scale = target / _rms(waveforms, lengths).clamp(min=1e-8)
        out = waveforms * scale[:, None]
        if self.clip is not None:
            out = out.clamp(-self.clip, self.clip)
        return out


class LoudnessNorm(RandomLevel):
    """Loudness normalisation (an automatic gain control): each row scaled
    to RMS ``level_db`` dB full scale over its valid samples, unclipped.

    Arguments
    ---------
    level_db : float
        The RMS level (dB full scale).

    Example
    -------
    >>> x = torch.randn(2, 8000) * torch.tensor([[0.01], [0.5]])
    >>> out = LoudnessNorm(-20.0)(x, torch.ones(2))
    >>> [round(float(20 * torch.log10(r)), 3) for r in out.pow(2).mean(1)
    ...  .sqrt()]
    [-20.0, -20.0]
    """

    def __init__(self, level_db: float = -26.0):
        super().__init__(level_db, level_db, clip=None)


#: mu of the mu-law companding of :class:`LowBitrateCodec`.
MU = 255.0


class LowBitrateCodec(torch.nn.Module):
    """A crude low-bitrate codec: a lower sample rate and coarse mu-law.

    Per batch, a rate of ``rates`` and a bit depth in ``bits`` are drawn
    (torch's random generator); each row is resampled to that rate
    (ideal band limit: its spectrum cut at half the rate), its samples
    mu-law companded and quantized to that many bits, and it is resampled
    back to ``sample_rate``.  Shape and length are kept.

    Arguments
    ---------
    sample_rate : int
        Sample rate of the waveforms (Hz).
    rates : sequence of int
        The lower rates to draw from (Hz, at most ``sample_rate``).
    bits : (int, int)
        Fewest and most bits per sample (2 to 16).

    Example
    -------
    >>> t = torch.arange(8000) / 8000
    >>> x = 0.5 * torch.sin(2 * torch.pi * 3500 * t)[None] + 0.3 * torch.sin(
    ...     2 * torch.pi * 300 * t)[None]
    >>> y = LowBitrateCodec(8000, rates=[4000], bits=(6, 6))(x)
    >>> spec = torch.fft.rfft(y[0]).abs() / 4000
    >>> y.shape, round(float(spec[300]), 1), bool(spec[3500] < 0.05)
    (torch.Size([1, 8000]), 0.3, True)
    """

    def __init__(
        self,
        sample_rate: int = 8000,
        rates: Sequence[int] = (4000, 5000, 6000),
        bits: Sequence[int] = (4, 8),
    ):
        super().__init__()
        rates = [int(r) for r in rates]
        if not rates or not all(0 < r <= sample_rate for r in rates):
            raise ConfigError(
                f"codec rates must be in (0, {sample_rate}] Hz (the sample "
                f"rate), got {rates}"
            )
        lo, hi = (int(b) for b in bits)
        if not 2 <= lo <= hi <= 16:
            raise ConfigError(
                f"codec bits must be 2 <= low <= high <= 16, got {bits}"
            )
        self.sample_rate, self.rates, self.bits = sample_rate, rates, (lo, hi)

    def forward(self, waveforms: Tensor) -> Tensor:
        """``[batch, time]`` -> decoded ``[batch, time]``."""
        rate = self.rates[int(torch.randint(len(self.rates), ()))]
        bits = int(torch.randint(self.bits[0], self.bits[1] + 1, ()))
        x = waveforms.float()
        n = x.shape[1]
        n_low = max(2, round(n * rate / self.sample_rate))
        spec = torch.fft.rfft(x)
        low = torch.fft.irfft(spec[:, : n_low // 2 + 1], n=n_low) * (n_low / n)
        low = low.clamp(-1.0, 1.0)
        levels = 2 ** (bits - 1) - 1  # per sign
        comp = torch.sign(low) * torch.log1p(MU * low.abs()) / np.log1p(MU)
        comp = torch.round(comp * levels) / levels
        low = torch.sign(comp) * torch.expm1(comp.abs() * np.log1p(MU)) / MU
        back = torch.fft.rfft(low) * (n / n_low)
        full = torch.zeros_like(spec)
        full[:, : back.shape[1]] = back[:, : spec.shape[1]]
        return torch.fft.irfft(full, n=n).to(waveforms)


class SpeakerSpeeds(torch.nn.Module):
    """Speed-perturbed copies of the training speakers, as new speakers.

    Each row of a batch becomes one of ``1 + len(speeds)`` copies,
    drawn uniformly (torch's random generator): itself (copy 0) or,
    for copy ``i``, resampled from ``sample_rate`` to ``sample_rate *
    speeds[i - 1] / 100`` and read at ``sample_rate`` (the speed
    convention of SpeechBrain's ``SpeedPerturb``: 90 keeps 90% of the
    samples, so pitch and formants rise by a ninth), then cut or
    zero-padded to the batch's length; its relative length follows.
    Pitch and formants shifted together make another voice, so a
    classifier that gives each copy a class of its own (label ``spk +
    copy * n_speakers``, see :meth:`labels`) learns to tell apart voices
    that differ by such a shift: three times the speakers with ``speeds:
    [90, 110]`` (Kaldi's and WeSpeaker's recipes do the same).

    Arguments
    ---------
    sample_rate : int
        Sample rate of the waveforms (Hz).
    speeds : sequence of int
        The speeds of the copies, in percent of the samples kept (not
        100; none: no copies).

    Example
    -------
    >>> t = torch.arange(8000) / 8000
    >>> x = torch.sin(2 * torch.pi * 1000 * t).repeat(6, 1)
    >>> copies = SpeakerSpeeds(8000, speeds=[50])
    >>> _ = torch.manual_seed(0)
    >>> y, lens, copy = copies(x, torch.ones(6))
    >>> copy.tolist(), lens.tolist()
    ([0, 1, 1, 0, 1, 1], [1.0, 0.5, 0.5, 1.0, 0.5, 0.5])
    >>> peak = torch.fft.rfft(y[1, :4000]).abs().argmax() * 2  # Hz
    >>> int(peak), bool(y[1, 4000:].abs().max() == 0)  # twice the pitch
    (2000, True)
    >>> bool(torch.equal(y[0], x[0]))
    True
    >>> copies.labels(torch.tensor([[3], [4]]), torch.tensor([0, 1]), 10)
    tensor([[ 3],
            [14]])
    """

    def __init__(self, sample_rate: int = 8000, speeds: Sequence[int] = ()):
        super().__init__()
        speeds = [int(s) for s in speeds or ()]
        if not all(0 < s <= 1000 and s != 100 for s in speeds):
            raise ConfigError(
                "speaker_speeds must be percentages in (0, 1000] other "
                f"than 100 (the speakers themselves), got {speeds}"
            )
        if len(set(speeds)) != len(speeds):
            raise ConfigError(f"speaker_speeds repeats a speed: {speeds}")
        self.speeds = speeds
        # SpeechBrain's SpeedPerturb resamples the same way
        self.resamplers = [
            Resample(orig_freq=sample_rate, new_freq=sample_rate * s // 100)
            for s in speeds
        ]

    @property
    def n_copies(self) -> int:
        """Classes per training speaker: itself and one per speed."""
        return 1 + len(self.speeds)

    def forward(
        self, waveforms: Tensor, lengths: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """``[batch, time]`` waveforms and relative lengths -> the copies,
        their relative lengths and each row's copy index ``[batch]``."""
        copy = torch.randint(self.n_copies, (len(waveforms),))
        out, out_lens = waveforms.clone(), lengths.clone()
        n = waveforms.shape[1]
        for i, speed in enumerate(self.speeds, start=1):
            rows = (copy == i).nonzero()[:, 0].to(waveforms.device)
            if not len(rows):
                continue
            fast = self.resamplers[i - 1](waveforms[rows].float())
            fast = torch.nn.functional.pad(fast, (0, max(0, n - len(fast[0]))))
            out[rows] = fast[:, :n].to(out)
            out_lens[rows] = (lengths[rows] * speed / 100).clamp(max=1.0)
        return out, out_lens, copy

    @staticmethod
    def labels(labels: Tensor, copy: Tensor, n_speakers: int) -> Tensor:
        """``labels`` (``[batch, 1]`` speaker indices) of the copies
        ``copy`` (``[batch]``): speaker ``s``'s copy ``i`` is class
        ``s + i * n_speakers``."""
        return labels + (copy.to(labels.device) * n_speakers).view(-1, 1)


def _write_wav(path: Path, x: np.ndarray, sample_rate: int) -> None:
    """PCM-16 mono WAV, written atomically."""
    with atomic_write(path, "wb") as f:
        sf.write(f, np.clip(x, -1.0, 1.0), sample_rate, format="WAV")


def _write_csv(path: Path, folder: Path, files: list[Path], sr: int) -> None:
    """An ``ExtendedCSVDataset`` CSV of WAVs under ``folder``."""
    with atomic_write(path) as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["ID", "duration", "wav", "wav_format", "wav_opts"])
        for wav in files:
            duration = sf.info(str(wav)).frames / sr
            rel = wav.relative_to(folder).as_posix()
            writer.writerow(
                [wav.stem, f"{duration:.4f}", f"${FOLDER_KEY}/{rel}", "wav", ""]
            )


def _level(x: np.ndarray) -> np.ndarray:
    """Scales ``x`` to RMS :data:`LEVEL`, peak at most 0.99."""
    x = x * LEVEL / max(float(np.sqrt(np.mean(x**2))), 1e-12)
    peak = float(np.abs(x).max())
    return x * (0.99 / peak) if peak > 0.99 else x


def _babble(
    spk2wavs: Mapping[str, Sequence[str]],
    n: int,
    talkers: int,
    rng: np.random.Generator,
    sample_rate: int,
    manifest: str = "",
) -> np.ndarray:
    """The sum of ``talkers`` speakers' speech, ``n`` samples each
    (``manifest``: where the files come from, named when one cannot be
    read)."""
    speakers = sorted(spk2wavs)
    chosen = rng.choice(len(speakers), min(talkers, len(speakers)), False)
    mix = np.zeros(n)
    for k in chosen:
        wavs = spk2wavs[speakers[k]]
        order = rng.permutation(len(wavs))
        parts, total = [], 0
        while total < n:  # the speaker's utterances, in random order
            wav = wavs[order[len(parts) % len(wavs)]]
            try:
                x, sr = sf.read(wav, dtype="float64")
            except (RuntimeError, OSError) as exc:  # LibsndfileError
                msg = str(exc).splitlines()[0] if str(exc) else repr(exc)
                raise DataError(
                    f"audio file {wav} (manifest {manifest}, utterance "
                    f"{Path(wav).stem}) cannot be read: {msg[:200]}; "
                    "prepare the data again with data_prep.py"
                ) from None
            if sr != sample_rate or not len(x):
                raise DataError(
                    f"{wav} is empty or not at {sample_rate} Hz (the "
                    "augmentation's sample_rate); prepare the data again "
                    "with data_prep.py at the training sample_rate"
                )
            parts.append(x)
            total += len(x)
        speech = np.concatenate(parts)
        start = int(rng.integers(0, len(speech) - n + 1))
        talker = speech[start : start + n]
        mix += talker / max(float(np.sqrt(np.mean(talker**2))), 1e-12)
    return mix


def _file_sha1(path: Pathlike) -> str:
    if not Path(path).is_file():
        raise MissingFileError(
            f"manifest {path} not found; prepare the data with data_prep.py"
        )
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def prepare_augmentation(
    folder: Pathlike,
    train_csv: Pathlike,
    *,
    data_root: Pathlike | None = None,
    sample_rate: int = 8000,
    seed: int = 1234,
    n_noises: int = 4,
    noise_dur: float = 10.0,
    n_babble: int = 16,
    babble_talkers: tuple[int, int] = (3, 6),
    babble_dur: float = 10.0,
    n_rirs: int = 40,
    rt60: tuple[float, float] = (0.2, 0.9),
    drr_db: tuple[float, float] = (-3.0, 12.0),
    n_image_rirs: int = 0,
) -> AugmentationFiles:
    """Writes the noise, babble and RIR files of the augmentation, once.

    Writes into ``folder``: ``noise/<color>_<i>.wav`` (``n_noises`` each
    of white, pink and brown noise, :func:`colored_noise`),
    ``babble/babble_<i>.wav`` (each the sum of ``babble_talkers`` (low,
    high) speakers of ``train_csv``), ``rirs/rir_<i>.wav``
    (:func:`simulate_rir`, RT60 and DRR uniform in ``rt60`` and
    ``drr_db``), ``n_image_rirs`` more responses of shoebox rooms
    ``rirs/image_<i>.wav`` (:func:`image_method_rir`, RT60 uniform in
    ``rt60``, rooms 3-10 x 3-8 x 2.5-4 m, talker and microphone anywhere
    0.5 m from the walls), their CSVs (:data:`NOISE_CSV`, :data:`BABBLE_CSV`,
    :data:`RIR_CSV`) and ``options.json``.  The outputs depend only on
    the options, the seed and the bytes of ``train_csv``; a second call
    with the same ones does nothing (the project's skip rule,
    :func:`deep_speaker_sb.utils.outputs_up_to_date`).  Every file is
    written atomically and ``options.json`` last, so an interrupted run
    is finished by calling it again.

    Arguments
    ---------
    folder : Pathlike
        Where the files go (``<prep_folder>/augment`` in the YAMLs).
    train_csv : Pathlike
        The training manifest (the babble's speech).
    data_root : Pathlike, optional
        Its ``{data_root}``; by default the manifest's folder.
    sample_rate : int
        Sample rate (Hz) of the prepared WAVs and of the outputs.
    seed : int
        Seed of every random draw.
    n_noises : int
        Files per noise color.
    noise_dur, babble_dur : float
        Length (s) of each noise and babble file.
    n_babble : int
        Babble files.
    babble_talkers : (int, int)
        Fewest and most speakers summed in one babble file.
    n_rirs : int
        Room impulse responses.
    rt60 : (float, float)
        Range of reverberation times (s).
    drr_db : (float, float)
        Range of direct-to-reverberant ratios (dB).
    n_image_rirs : int
        Image-method room impulse responses added to ``rirs.csv`` (0:
        none; then ``options.json`` stays as it was before this option).

    Returns
    -------
    AugmentationFiles
        The three CSV paths.

    Raises
    ------
    ConfigError
        If an option is out of range.
    DataError
        If a training WAV is not at ``sample_rate``.

    Example
    -------
    >>> import tempfile, pathlib
    >>> from deep_speaker_sb.dataio import SegmentRow, write_manifest
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> rows = []
    >>> for spk in ("A", "B"):
    ...     sf.write(d / f"{spk}_1.wav", np.random.randn(8000) * 0.1, 8000)
    ...     rows.append(SegmentRow(f"{spk}_1_0", 1.0, f"{{data_root}}/"
    ...                            f"{spk}_1.wav", 0, 8000, spk))
    >>> write_manifest(d / "train.csv", rows)
    >>> files = prepare_augmentation(d / "augment", d / "train.csv",
    ...     n_noises=1, noise_dur=1.0, n_babble=2, babble_dur=1.0, n_rirs=2)
    >>> files.rir_csv.read_text().splitlines()[1]
    'rir_000,...,$augment_folder/rirs/rir_000.wav,wav,'
    >>> sorted(p.name for p in (d / "augment" / "noise").iterdir())
    ['brown_00.wav', 'pink_00.wav', 'white_00.wav']
    """
    folder = Path(folder)
    lo, hi = babble_talkers
    if (
        min(n_noises, n_babble, n_rirs) < 1
        or n_image_rirs < 0
        or not 1 <= lo <= hi
    ):
        raise ConfigError(
            "prepare_augmentation needs n_noises, n_babble, n_rirs >= 1, "
            "n_image_rirs >= 0 and 1 <= babble_talkers[0] <= "
            f"babble_talkers[1], got {n_noises}, {n_babble}, {n_rirs}, "
            f"{n_image_rirs}, {babble_talkers}"
        )
    if not (0 < rt60[0] <= rt60[1] and noise_dur > 0 and babble_dur > 0):
        raise ConfigError(
            f"rt60 {rt60}, noise_dur {noise_dur} and babble_dur "
            f"{babble_dur} must be positive (rt60 as (low, high))"
        )
    options = {
        "version": AUGMENT_VERSION,
        "train_csv_sha1": _file_sha1(train_csv),
        "sample_rate": sample_rate,
        "seed": seed,
        "n_noises": n_noises,
        "noise_dur": noise_dur,
        "n_babble": n_babble,
        "babble_talkers": list(babble_talkers),
        "babble_dur": babble_dur,
        "n_rirs": n_rirs,
        "rt60": list(rt60),
        "drr_db": list(drr_db),
    }
    if n_image_rirs:  # absent when 0: folders made before it stay valid
        options["n_image_rirs"] = n_image_rirs
    noises = [
        folder / "noise" / f"{color}_{i:02d}.wav"
        for color in NOISE_COLORS
        for i in range(n_noises)
    ]
    babble = [
        folder / "babble" / f"babble_{i:02d}.wav" for i in range(n_babble)
    ]
    rirs = [folder / "rirs" / f"rir_{i:03d}.wav" for i in range(n_rirs)]
    image_rirs = [
        folder / "rirs" / f"image_{i:03d}.wav" for i in range(n_image_rirs)
    ]
    files = AugmentationFiles(
        folder / NOISE_CSV, folder / BABBLE_CSV, folder / RIR_CSV
    )
    outputs = [
        *noises,
        *babble,
        *rirs,
        *image_rirs,
        *dataclasses.astuple(files),
    ]
    if outputs_up_to_date(folder, outputs, options):
        logger.info("augmentation files in %s up to date, skipping", folder)
        return files

    logger.info("writing the augmentation files into %s", folder)
    # No options file while the files change: an interrupted run that
    # rewrote some of them is never taken for a finished one.
    (folder / OPTIONS_FILE).unlink(missing_ok=True)
    keep = set(outputs)
    for sub in ("noise", "babble", "rirs"):  # files of other options
        for old in (folder / sub).glob("*.wav"):
            if old not in keep:
                old.unlink()

    for k, exponent in enumerate(NOISE_COLORS.values()):
        for i in range(n_noises):
            rng = np.random.default_rng([seed, 0, k, i])
            x = colored_noise(round(noise_dur * sample_rate), exponent, rng)
            _write_wav(noises[k * n_noises + i], _level(x), sample_rate)

    spk2utts = speaker_utterances(
        utterances(read_manifest(train_csv, data_root))
    )
    spk2wavs = {s: [u.wav for u in us] for s, us in spk2utts.items()}
    for i, path in enumerate(babble):
        rng = np.random.default_rng([seed, 1, i])
        talkers = int(rng.integers(lo, hi + 1))
        n = round(babble_dur * sample_rate)
        x = _babble(
            spk2wavs, n, talkers, rng, sample_rate, Path(train_csv).name
        )
        _write_wav(path, _level(x), sample_rate)

    for i, path in enumerate(rirs):
        rng = np.random.default_rng([seed, 2, i])
        h = simulate_rir(
            sample_rate, rng.uniform(*rt60), rng.uniform(*drr_db), rng
        )
        _write_wav(path, h, sample_rate)

    _write_csv(files.noise_csv, folder, noises, sample_rate)
    _write_csv(files.babble_csv, folder, babble, sample_rate)
    for i, path in enumerate(image_rirs):
        rng = np.random.default_rng([seed, 3, i])
        room = rng.uniform([3.0, 3.0, 2.5], [10.0, 8.0, 4.0])
        source, mic = rng.uniform(0.5, room - 0.5, size=(2, 3))
        h = image_method_rir(sample_rate, room, source, mic, rng.uniform(*rt60))
        _write_wav(path, h, sample_rate)

    _write_csv(files.rir_csv, folder, [*rirs, *image_rirs], sample_rate)
    save_options(folder, options)
    return files


def prepare_from_hparams(
    hparams: Mapping[str, Any],
) -> AugmentationFiles | None:
    """Runs :func:`prepare_augmentation` for a training YAML, if it augments.

    Arguments
    ---------
    hparams : mapping
        Uses ``augment`` (True or False), and when True
        ``augment_folder``, ``train_annotation``, ``prep_folder``,
        ``sample_rate``, ``augment_seed`` and ``image_rirs`` (0 when
        missing).

    Returns
    -------
    AugmentationFiles or None
        The CSVs, or None when ``augment`` is False.

    Raises
    ------
    ConfigError
        If ``augment`` is not a boolean.

    Example
    -------
    >>> prepare_from_hparams({"augment": False}) is None
    True
    >>> prepare_from_hparams({"augment": "no"})
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.ConfigError: augment must be True or False, ...
    """
    augment = hparams["augment"]
    if not isinstance(augment, bool):
        raise ConfigError(f"augment must be True or False, got {augment!r}")
    if not augment:
        return None
    return prepare_augmentation(
        hparams["augment_folder"],
        hparams["train_annotation"],
        data_root=hparams["prep_folder"],
        sample_rate=hparams["sample_rate"],
        seed=hparams["augment_seed"],
        n_image_rirs=int(hparams.get("image_rirs", 0)),
    )
