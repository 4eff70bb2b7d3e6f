"""A built-in demo corpus in the VIVOS layout, synthesized with numpy.

The corpus lets every stage of the recipe run (and be tested) without
downloading VIVOS.  It is written in exactly the layout of the real
corpus::

    DIR/train/waves/VIVOSSPK01/VIVOSSPK01_R001.wav
    DIR/train/prompts.txt     # "VIVOSSPK01_R001 KHÁCH SẠN ..."
    DIR/train/genders.txt     # "VIVOSSPK01 m"
    DIR/test/waves/VIVOSDEV01/VIVOSDEV01_R001.wav
    DIR/test/prompts.txt
    DIR/test/genders.txt

Each speaker is a source-filter voice of its own (f0 and tone range,
vocal-tract length scaling the formants, idiosyncratic vowel targets,
formant bandwidths, a fixed nasal/sinus pole-zero pair, spectral tilt,
breathiness, jitter and shimmer; the gender is drawn per speaker and
consistent with f0 and tract length).
Each utterance is a random sequence of syllables (stops, fricatives,
nasals, vowels and diphthongs with Vietnamese-like tones, short pauses)
with 0.3-0.8 s of low-level noise (45-60 dB below the speech) before and
after it, and gets its own channel colouring (random EQ, high-pass,
low-pass), background noise at a random SNR (10-30 dB, gated to the
speech as by a recorder's noise gate, so that silence trimming has work
to do) and level, so that a model has to learn the speaker, not the
recording.

The difficulty is calibrated so that a plain baseline (mean MFCC vector
of each utterance, cosine scoring; ``bench/baseline_eer.py``) reaches an
EER of roughly 15-25 % on the 10 default test speakers, while a model
trained on the 30 training speakers can do much better.

Every utterance is synthesized from its own random generator derived
from ``(seed, split, speaker, utterance)``, so the corpus is byte-for-byte
the same for a given seed whatever ``num_workers`` is.

Command line (the demo recipe's script)::

    python recipes/demo/generate_corpus.py --out data/synthetic_vivos
"""

from __future__ import annotations

import multiprocessing
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf
from speechbrain.utils.logger import get_logger

from deep_speaker_sb.errors import ConfigError
from deep_speaker_sb.utils import (
    Pathlike,
    atomic_write,
    outputs_up_to_date,
    save_options,
)

logger = get_logger(__name__)

#: Bump when the synthesis changes, so that old corpora are regenerated.
GENERATOR_VERSION = 1

#: The options file the skip rule keeps in the corpus root.
OPTIONS_FILE = "synthetic_options.json"
_PARTIAL_MARK = ".synthetic_partial"

_SPLITS = (("train", "VIVOSSPK"), ("test", "VIVOSDEV"))

#: Vietnamese-looking syllables for the prompts (upper case, as in VIVOS).
SYLLABLES = (
    "KHÁCH SẠN NHÀ NƯỚC VIỆT NAM NGƯỜI HÀ NỘI CỦA TÔI MỘT HAI BA ĐƯỢC "
    "KHÔNG CÓ LÀ TRONG NHỮNG CHÚNG TA THÀNH PHỐ HỌC SINH NĂM NAY CÁC "
    "ANH CHỊ EM ĐÃ SẼ ĐANG VỀ ĐI LÀM VIỆC NGÀY MAI SÁNG CHIỀU TỐI MƯA "
    "NẮNG BIỂN SÔNG NÚI ĐƯỜNG XE MÁY CHỢ BÁN MUA GIÁ TIỀN CÔNG TY DÂN "
    "TỈNH HUYỆN XÃ QUÊ HƯƠNG GIA ĐÌNH CON MẸ CHA ÔNG BÀ BẠN BÈ VUI BUỒN "
    "NÓI CHUYỆN NGHE THẤY BIẾT RẤT NHIỀU ÍT MỚI CŨ ĐẸP XANH ĐỎ VÀNG"
).split()

# Neutral (adult male) targets F1, F2, F3 in Hz of the vowels.
_VOWELS = {
    "a": (740.0, 1250.0, 2450.0),
    "e": (480.0, 1950.0, 2600.0),
    "E": (640.0, 1750.0, 2500.0),
    "i": (290.0, 2250.0, 3000.0),
    "o": (480.0, 900.0, 2450.0),
    "O": (600.0, 950.0, 2450.0),
    "u": (320.0, 800.0, 2300.0),
    "U": (350.0, 1400.0, 2400.0),
    "@": (520.0, 1400.0, 2500.0),
}
_VOWEL_NAMES = tuple(_VOWELS)
_NASALS = {"m": (260.0, 1000.0, 2200.0), "n": (260.0, 1600.0, 2500.0)}
_HIGH_FORMANTS = (3500.0, 4400.0)
_BANDWIDTHS = np.array([70.0, 90.0, 120.0, 170.0, 240.0])
# Frication noise: centre (Hz, for a neutral tract), width (octaves), level.
_FRICATIVES = {
    "s": (5200.0, 0.45, 0.9),
    "x": (2900.0, 0.5, 0.9),
    "f": (3500.0, 1.6, 0.3),
    "kh": (1800.0, 0.8, 0.5),
}
_BURSTS = {
    "p": (900.0, 1.2, 0.6),
    "t": (4200.0, 0.8, 0.9),
    "k": (1900.0, 0.6, 0.9),
}
# Tone contours of a syllable, in units of the speaker's tone range.
_TONES = (
    (0.2, 0.2, 0.1),  # level
    (-0.3, 0.1, 0.9),  # rising
    (0.4, -0.2, -0.8),  # falling
    (0.0, -0.8, -0.2),  # dipping
    (0.5, 0.8, 1.0),  # high rising
    (-0.5, -0.8, -1.0),  # low falling
)

_WIN, _HOP, _NFFT = 512, 256, 1024
_EQ_DB = 2.5  # std (dB) of the per-utterance channel EQ gains
_SNR_DB = (10.0, 30.0)  # range of the background noise SNR
_FLOOR_DB = (45.0, 60.0)  # noise floor of the silences, dB below speech
_FORMANT_DEV = 0.04  # std of the speakers' log formant multipliers
_VOWEL_DEV = 0.05  # std of the speakers' log vowel-target multipliers
_SINUS_HZ = (1000.0, 3000.0)  # range of the speakers' pole-zero pair


@dataclass(frozen=True)
class Voice:
    """The fixed parameters of one synthetic speaker.

    Arguments
    ---------
    gender : str
        ``"m"`` or ``"f"``.
    f0 : float
        Median fundamental frequency in Hz.
    tone_range : float
        Pitch excursion of the tones, in semitones.
    alpha : float
        Formant scale factor (inverse relative vocal-tract length).
    formant_dev : numpy.ndarray
        Per-formant multipliers (5 values) of the speaker's resonances.
    vowel_dev : numpy.ndarray
        Idiosyncratic multipliers ``[n_vowels, 3]`` of the vowel targets.
    bandwidth : float
        Scale of the formant bandwidths.
    tilt : float
        Spectral tilt of the glottal source in dB per octave above 300 Hz.
    h1 : float
        Boost in dB of the lowest harmonics (open-quotient proxy).
    breath : float
        Amplitude of the aspiration noise relative to the pulses.
    jitter : float
        Standard deviation of the period, as a fraction of it.
    shimmer : float
        Standard deviation of the log pulse amplitude.
    rate : float
        Scale of the segment durations (larger is slower).
    sinus : tuple of float
        Frequencies (Hz) of the zero and of the pole of a fixed pole-zero
        pair (nasal/sinus coupling) that notches the speaker's spectrum.
    """

    gender: str
    f0: float
    tone_range: float
    alpha: float
    formant_dev: np.ndarray
    vowel_dev: np.ndarray
    bandwidth: float
    tilt: float
    h1: float
    breath: float
    jitter: float
    shimmer: float
    rate: float
    sinus: tuple[float, float]


def speaker_ids(prefix: str, n: int) -> list[str]:
    """The VIVOS-style ids of ``n`` speakers.

    Example
    -------
    >>> speaker_ids("VIVOSDEV", 3)
    ['VIVOSDEV01', 'VIVOSDEV02', 'VIVOSDEV03']
    """
    width = max(2, len(str(n)))
    return [f"{prefix}{i:0{width}d}" for i in range(1, n + 1)]


def utterance_ids(spk_id: str, n: int) -> list[str]:
    """The utterance ids ``<SPK>_R001 ...`` of one speaker.

    Example
    -------
    >>> utterance_ids("VIVOSSPK01", 2)
    ['VIVOSSPK01_R001', 'VIVOSSPK01_R002']
    """
    width = max(3, len(str(n)))
    return [f"{spk_id}_R{i:0{width}d}" for i in range(1, n + 1)]


def make_voice(rng: np.random.Generator) -> Voice:
    """Draws the parameters of one speaker.

    Arguments
    ---------
    rng : numpy.random.Generator
        The speaker's random generator.

    Returns
    -------
    Voice
        The speaker's voice.

    Example
    -------
    >>> v = make_voice(np.random.default_rng(0))
    >>> v.gender in ("m", "f"), 70 < v.f0 < 300
    (True, True)
    """
    gender = "f" if rng.random() < 0.5 else "m"
    # One latent "size" drives both f0 and tract length within a gender.
    size = rng.random()
    u_f0, u_vtl = rng.random(2)
    if gender == "m":
        f0_lo, f0_hi, a_lo, a_hi = 85.0, 155.0, 0.90, 1.05
    else:
        f0_lo, f0_hi, a_lo, a_hi = 165.0, 265.0, 1.08, 1.24
    f0 = f0_lo * (f0_hi / f0_lo) ** (0.5 * size + 0.5 * u_f0)
    alpha = a_lo + (a_hi - a_lo) * (0.5 * size + 0.5 * u_vtl)
    zero = float(rng.uniform(*_SINUS_HZ)) * alpha
    return Voice(
        gender=gender,
        f0=float(f0),
        tone_range=float(rng.uniform(2.0, 6.0)),
        alpha=float(alpha),
        formant_dev=np.exp(rng.normal(0.0, _FORMANT_DEV, 5)),
        vowel_dev=np.exp(rng.normal(0.0, _VOWEL_DEV, (len(_VOWELS), 3))),
        bandwidth=float(rng.uniform(0.7, 1.6)),
        tilt=float(rng.uniform(-8.0, 0.0)),
        h1=float(rng.uniform(0.0, 9.0)),
        breath=float(rng.uniform(0.02, 0.3) + (0.05 * (gender == "f"))),
        jitter=float(rng.uniform(0.003, 0.02)),
        shimmer=float(rng.uniform(0.02, 0.15)),
        rate=float(rng.uniform(0.8, 1.25)),
        sinus=(zero, zero * float(rng.uniform(1.1, 1.3))),
    )


class _Plan:
    """Piecewise-linear control tracks of one utterance (knots in s)."""

    def __init__(self) -> None:
        self.voice_amp: list[tuple[float, float]] = []
        self.asp_amp: list[tuple[float, float]] = []
        self.fric_amp: list[tuple[float, float]] = []
        self.fric_shape: list[tuple[float, float, float, float]] = []
        self.formants: list[tuple[float, np.ndarray]] = []
        self.f0: list[tuple[float, float]] = []

    def level(self, track: list, t0: float, t1: float, value: float) -> None:
        ramp = min(0.012, (t1 - t0) / 3)
        track.append((t0 + ramp, value))
        track.append((t1 - ramp, value))

    def nasal(
        self,
        rng: np.random.Generator,
        t: float,
        dur: tuple[float, float],
        rate: float,
        amp: float,
        scale: np.ndarray,
    ) -> float:
        """Adds a random nasal at ``t``, ``rate`` times a duration drawn
        from ``dur`` (s) long; returns its end."""
        name = str(rng.choice(list(_NASALS)))
        d = rate * rng.uniform(*dur)
        self.level(self.voice_amp, t, t + d, amp)
        self.formants.append((t + d / 2, np.array(_NASALS[name]) * scale))
        return t + d


def _plan_utterance(
    voice: Voice, rng: np.random.Generator
) -> tuple[_Plan, float, float, float, int]:
    """Draws the phone sequence; returns tracks, lead, end of speech, total
    duration and the number of syllables."""
    plan = _Plan()
    rate = voice.rate * float(np.exp(rng.normal(0.0, 0.07)))
    lead = float(rng.uniform(0.3, 0.8))
    trail = float(rng.uniform(0.3, 0.8))
    speech_target = float(rng.uniform(1.3, 3.4))
    alpha = voice.alpha * float(np.exp(rng.normal(0.0, 0.012)))
    scale = alpha * voice.formant_dev[:3]
    t = lead
    n_syl = 0
    while t - lead < speech_target or n_syl == 0:
        syl_start = t
        stress = float(rng.uniform(0.6, 1.0))
        onset = rng.choice(
            ["", "fric", "stop", "nasal", "h"], p=[0.2, 0.3, 0.3, 0.12, 0.08]
        )
        if onset == "fric":
            name = str(rng.choice(list(_FRICATIVES)))
            fc, width, lev = _FRICATIVES[name]
            d = rate * rng.uniform(0.07, 0.13)
            plan.level(plan.fric_amp, t, t + d, lev)
            plan.fric_shape.append((t, fc * alpha, width, d))
            t += d
        elif onset == "stop":
            name = str(rng.choice(list(_BURSTS)))
            fc, width, lev = _BURSTS[name]
            t += rate * rng.uniform(0.04, 0.08)  # closure
            d = rng.uniform(0.01, 0.02)
            plan.level(plan.fric_amp, t, t + d, lev * 1.5)
            plan.fric_shape.append((t, fc * alpha, width, d))
            t += d
            d = rate * rng.uniform(0.01, 0.04)  # aspiration
            plan.level(plan.asp_amp, t, t + d, 0.5)
            t += d
        elif onset == "nasal":
            t = plan.nasal(rng, t, (0.05, 0.09), rate, 0.35 * stress, scale)
        elif onset == "h":
            d = rate * rng.uniform(0.05, 0.09)
            plan.level(plan.asp_amp, t, t + d, 0.6)
            t += d
        # Vowel nucleus (a diphthong one time in three).
        d = rate * rng.uniform(0.11, 0.22)
        v1 = int(rng.integers(len(_VOWELS)))
        v2 = int(rng.integers(len(_VOWELS))) if rng.random() < 0.33 else v1
        for k, v in enumerate((v1, v2)):
            target = np.array(_VOWELS[_VOWEL_NAMES[v]]) * voice.vowel_dev[v]
            target = target * scale * np.exp(rng.normal(0.0, 0.02, 3))
            plan.formants.append((t + d * (0.25 + 0.5 * k), target))
        plan.level(plan.voice_amp, t, t + d, stress)
        t += d
        coda = rng.choice(["", "nasal", "stop"], p=[0.5, 0.3, 0.2])
        if coda == "nasal":
            t = plan.nasal(rng, t, (0.04, 0.08), rate, 0.3 * stress, scale)
        elif coda == "stop":  # unreleased, as in Vietnamese
            t += rate * rng.uniform(0.03, 0.06)
        tone = _TONES[int(rng.integers(len(_TONES)))]
        for k, x in enumerate(tone):
            plan.f0.append((syl_start + (t - syl_start) * k / 2, x))
        n_syl += 1
        if rng.random() < 0.12:
            t += rate * rng.uniform(0.1, 0.3)  # pause
        else:
            t += rate * rng.uniform(0.0, 0.03)
    return plan, lead, t, t + trail, n_syl


def _interp(times: np.ndarray, knots: list, default: float = 0.0):
    if not knots:
        return np.full(len(times), default)
    knots = sorted(knots, key=lambda k: k[0])
    xs = np.array([k[0] for k in knots])
    ys = np.array([k[1] for k in knots], dtype=float)
    if ys.ndim == 1:
        return np.interp(times, xs, ys, left=default, right=default)
    return np.stack(
        [np.interp(times, xs, ys[:, j]) for j in range(ys.shape[1])], axis=1
    )


def _resonances(freqs: np.ndarray, formants: np.ndarray, bws: np.ndarray):
    """Magnitude of a cascade of resonators, 1 at DC.

    ``formants`` and ``bws`` are ``[frames, n]``; returns ``[frames, bins]``.
    """
    f = freqs[None, :, None]
    fk = formants[:, None, :]
    b2 = (bws[:, None, :] / 2) ** 2
    mag = (fk**2 + b2) / np.sqrt(((f - fk) ** 2 + b2) * ((f + fk) ** 2 + b2))
    return mag.prod(axis=2)


def _fft_len(n: int) -> int:
    """The smallest 2^a 3^b 5^c at least ``n`` (a fast FFT size)."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p = p35
            while p < n:
                p *= 2
            best = min(best, p)
            p35 *= 3
        p5 *= 5
    return best


def _filter(x: np.ndarray, gain: np.ndarray, m: int) -> np.ndarray:
    """Applies a zero-phase ``gain`` (on ``rfftfreq(m)``) to the whole of x."""
    return np.fft.irfft(np.fft.rfft(x, n=m) * gain, n=m)[: len(x)]


def _frames(x: np.ndarray) -> np.ndarray:
    """Hann-windowed frames of ``x``, centred in zero-padded FFT buffers."""
    xp = np.pad(x, (_WIN, _WIN + _HOP))
    n_frames = (len(xp) - _WIN) // _HOP + 1
    idx = np.arange(_WIN)[None, :] + _HOP * np.arange(n_frames)[:, None]
    buf = np.zeros((n_frames, _NFFT), dtype=np.float32)
    off = (_NFFT - _WIN) // 2
    buf[:, off : off + _WIN] = xp[idx] * np.hanning(_WIN + 1)[:-1]
    return np.fft.rfft(buf, axis=1)


def _overlap_add(spec: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`_frames` (filtered overlap-add)."""
    frames = np.fft.irfft(spec, n=_NFFT, axis=1)
    n_frames = frames.shape[0]
    per = _NFFT // _HOP
    blocks = np.zeros((n_frames + per, _HOP))
    frames = frames.reshape(n_frames, per, _HOP)
    for k in range(per):
        blocks[k : k + n_frames] += frames[:, k, :]
    start = (_NFFT - _WIN) // 2 + _WIN
    # A periodic Hann window at hop WIN/2 sums to 1.
    return blocks.reshape(-1)[start : start + n]


def synthesize_utterance(
    voice: Voice, rng: np.random.Generator, sample_rate: int = 16000
) -> tuple[np.ndarray, int]:
    """Synthesizes one utterance of ``voice``.

    Arguments
    ---------
    voice : Voice
        The speaker.
    rng : numpy.random.Generator
        The utterance's random generator.
    sample_rate : int
        Sampling rate in Hz.

    Returns
    -------
    numpy.ndarray
        The waveform (float32, peak below 1).
    int
        The number of syllables spoken.

    Example
    -------
    >>> v = make_voice(np.random.default_rng(1))
    >>> wav, n_syl = synthesize_utterance(v, np.random.default_rng(2))
    >>> 2.0 < len(wav) / 16000 < 5.5, float(abs(wav).max()) < 1.0
    (True, True)
    """
    sr = sample_rate
    plan, lead, speech_end, total, n_syl = _plan_utterance(voice, rng)
    n = int(round(total * sr))
    t = np.arange(n) / sr
    nyq = sr / 2

    # Glottal source: jittered, shimmered pulse train along the f0 contour.
    f0_utt = voice.f0 * float(np.exp(rng.normal(0.0, 0.04)))
    tones = _interp(t, plan.f0, 0.0)
    declination = -1.5 * (t - lead) / max(speech_end - lead, 1e-3)
    f0 = f0_utt * 2.0 ** ((tones * voice.tone_range / 2 + declination) / 12)
    phase = np.cumsum(f0 / sr)
    voice_amp = _interp(t, plan.voice_amp)
    pulses_at = np.flatnonzero(np.diff(np.floor(phase))) + 1
    period = sr / f0[pulses_at]
    pulses_at = pulses_at + np.round(
        rng.normal(0.0, voice.jitter, len(pulses_at)) * period
    ).astype(int)
    pulses_at = np.clip(pulses_at, 0, n - 1)
    amp = voice_amp[pulses_at] * np.exp(
        rng.normal(0.0, voice.shimmer, len(pulses_at))
    )
    source = np.zeros(n)
    np.add.at(source, pulses_at, amp * np.sqrt(120.0 / f0[pulses_at]))
    m = _fft_len(n + 2048)  # whole-signal filters, with room for their tails
    freqs = np.fft.rfftfreq(m, 1 / sr)
    tilt_db = voice.tilt * np.log2(np.maximum(freqs, 300.0) / 300.0)
    tilt_db += voice.h1 * np.exp(-((freqs / (1.5 * voice.f0)) ** 2))
    source = _filter(source, 10 ** (tilt_db / 20), m)
    # Aspiration noise, pulsed with the glottal cycle, plus [h] noise.
    unit = np.sqrt(120.0 / sr)
    pulsed = 0.5 * (1 - np.cos(2 * np.pi * phase))
    asp = voice.breath * voice_amp * pulsed + _interp(t, plan.asp_amp)
    source += rng.standard_normal(n) * asp * unit
    fric = rng.standard_normal(n) * _interp(t, plan.fric_amp) * unit * 0.6

    # Vocal-tract and frication filters, frame by frame.
    spec_src = _frames(source)
    spec_fric = _frames(fric)
    n_frames = spec_src.shape[0]
    centres = (np.arange(n_frames) * _HOP - _WIN / 2) / sr
    bins = np.fft.rfftfreq(_NFFT, 1 / sr).astype(np.float32)
    low = np.minimum(_interp(centres, plan.formants), nyq * 0.95)
    low = low.astype(np.float32)
    high = np.array(_HIGH_FORMANTS) * voice.alpha * voice.formant_dev[3:]
    high = np.minimum(high, nyq * 0.95)[None, :].astype(np.float32)
    scale_bw = (_BANDWIDTHS * voice.bandwidth).astype(np.float32)
    tract = _resonances(bins, low, scale_bw[:3] * (1 + low / 5000))
    tract *= _resonances(bins, high, scale_bw[3:] * (1 + high / 5000))
    zero, pole = np.minimum(voice.sinus, nyq * 0.95)
    tract *= _resonances(bins, np.array([[pole]]), np.array([[pole / 20]]))
    tract /= _resonances(bins, np.array([[zero]]), np.array([[zero / 20]]))
    spec = spec_src * tract
    shape = np.zeros((n_frames, len(bins)), dtype=np.float32)
    log_bins = np.log2(np.maximum(bins, 50.0))
    for start, fc, width, dur in plan.fric_shape:
        sel = (centres > start - 0.04) & (centres < start + dur + 0.04)
        bump = np.exp(-0.5 * ((log_bins - np.log2(fc)) / width) ** 2)
        shape[sel] = np.maximum(shape[sel], bump)
    spec += spec_fric * shape
    speech = _overlap_add(spec, n)

    # Background noise at a random SNR, then the channel, then the level.
    i0, i1 = int(lead * sr), int(speech_end * sr)
    p_speech = float(np.mean(speech[i0:i1] ** 2)) + 1e-12
    snr = rng.uniform(*_SNR_DB)
    noise_tilt = rng.uniform(-6.0, 0.0)
    noise_db = noise_tilt * np.log2(np.maximum(freqs, 100.0) / 100.0)
    noise = _filter(rng.standard_normal(n), 10 ** (noise_db / 20), m)
    if rng.random() < 0.3:  # mains hum
        hum_f = 50.0 if rng.random() < 0.5 else 60.0
        for h in range(1, 4):
            noise += 2.0 / h * np.sin(2 * np.pi * hum_f * h * t + rng.random())
    noise *= np.sqrt(p_speech / np.mean(noise**2))
    # The noise is gated like a recorder's noise gate: at the SNR while
    # the speaker talks, fading to a low floor in the silences around.
    fade = rng.uniform(0.05, 0.2)
    gate = np.minimum(t - (lead - fade), speech_end + fade - t) / fade
    gate = 0.5 - 0.5 * np.cos(np.pi * np.clip(gate, 0.0, 1.0))
    floor = 10 ** (-rng.uniform(*_FLOOR_DB) / 20)
    mixed = speech + noise * (gate * 10 ** (-snr / 20) + floor)

    eq_freqs = np.geomspace(100.0, nyq, 8)
    eq_db = np.interp(
        np.log(np.maximum(freqs, 1.0)),
        np.log(eq_freqs),
        rng.normal(0.0, _EQ_DB, len(eq_freqs)),
    )
    hp = rng.uniform(60.0, 250.0)
    lp = rng.uniform(0.85, 0.98) * nyq
    gain = 10 ** (eq_db / 20)
    gain /= np.sqrt(1 + (hp / np.maximum(freqs, 1e-3)) ** 4)
    gain /= np.sqrt(1 + (freqs / lp) ** 8)
    out = _filter(mixed, gain, m)
    out *= rng.uniform(0.25, 0.9) / (np.abs(out).max() + 1e-12)
    return out.astype(np.float32), n_syl


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def _split_voices(seed: int, split: int, n: int) -> list[Voice]:
    return [make_voice(_rng(seed, split, i, 0xA11CE)) for i in range(n)]


class _Job(NamedTuple):
    """One utterance to synthesize and write."""

    path: Path
    utt_id: str
    voice: Voice
    keys: tuple[int, ...]  # (seed, split, speaker, utterance)
    sample_rate: int


def _run_job(job: _Job) -> tuple[str, str]:
    """Synthesizes and writes one utterance; returns (utt_id, text)."""
    rng = _rng(*job.keys, 0xB0B)
    wav, n_syl = synthesize_utterance(job.voice, rng, job.sample_rate)
    text = " ".join(SYLLABLES[w] for w in rng.choice(len(SYLLABLES), n_syl))
    with atomic_write(job.path, "wb") as f:
        sf.write(f, wav, job.sample_rate, format="WAV", subtype="PCM_16")
    return job.utt_id, text


def _options(**kwargs: int) -> dict:
    return {"generator": "synthetic", "version": GENERATOR_VERSION, **kwargs}


def _layout(
    n_train: int, n_test: int, utts: int
) -> dict[str, list[tuple[str, list[str]]]]:
    """``{split: [(speaker, [utterance, ...]), ...]}``."""
    counts = {"train": n_train, "test": n_test}
    return {
        split: [
            (spk, utterance_ids(spk, utts))
            for spk in speaker_ids(prefix, counts[split])
        ]
        for split, prefix in _SPLITS
    }


def corpus_files(
    out: Pathlike,
    *,
    n_train_speakers: int = 30,
    n_test_speakers: int = 10,
    utts_per_speaker: int = 20,
) -> list[Path]:
    """Every file :func:`generate_corpus` writes (except its options file).

    Example
    -------
    >>> files = corpus_files("c", n_train_speakers=2, n_test_speakers=1,
    ...                      utts_per_speaker=3)
    >>> len(files), files[0].as_posix()
    (13, 'c/train/waves/VIVOSSPK01/VIVOSSPK01_R001.wav')
    """
    out = Path(out)
    layout = _layout(n_train_speakers, n_test_speakers, utts_per_speaker)
    files = []
    for split, speakers in layout.items():
        for spk, utt_list in speakers:
            files += [
                out / split / "waves" / spk / f"{u}.wav" for u in utt_list
            ]
    for split in layout:
        files += [out / split / "prompts.txt", out / split / "genders.txt"]
    return files


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_positive(**kwargs: int) -> None:
    for name, value in kwargs.items():
        if not _is_int(value) or value < 1:
            raise ConfigError(
                f"{name} must be a positive integer, got {value!r}"
            )


def generate_corpus(
    out: Pathlike,
    *,
    n_train_speakers: int = 30,
    n_test_speakers: int = 10,
    utts_per_speaker: int = 20,
    seed: int = 0,
    sample_rate: int = 16000,
    num_workers: int = 1,
) -> Path:
    """Writes a synthetic speaker corpus in the VIVOS layout.

    Skips all work when ``out`` already holds a complete corpus made with
    the same options.  A folder that holds anything else is never
    overwritten.

    Arguments
    ---------
    out : Pathlike
        The corpus root (created if needed).
    n_train_speakers : int
        Number of training speakers (``VIVOSSPK01`` ...).
    n_test_speakers : int
        Number of test speakers (``VIVOSDEV01`` ...), disjoint from them.
    utts_per_speaker : int
        Utterances per speaker (``<SPK>_R001`` ...).
    seed : int
        Random seed (non-negative); the same seed gives the same bytes.
    sample_rate : int
        Sampling rate of the WAV files (at least 8000 Hz).
    num_workers : int
        Processes that synthesize in parallel (results do not depend on
        it).

    Returns
    -------
    Path
        The corpus root ``out``.

    Raises
    ------
    ConfigError
        If an option is out of range, or ``out`` is a file or a folder
        that holds something else than a corpus of this generator.

    Example
    -------
    >>> import tempfile, pathlib
    >>> root = generate_corpus(pathlib.Path(tempfile.mkdtemp()) / "c",
    ...     n_train_speakers=1, n_test_speakers=1, utts_per_speaker=2)
    >>> sorted(p.name for p in (root / "test" / "waves").rglob("*.wav"))
    ['VIVOSDEV01_R001.wav', 'VIVOSDEV01_R002.wav']
    >>> (root / "train" / "genders.txt").read_text().split()[0]
    'VIVOSSPK01'
    """
    _check_positive(
        n_train_speakers=n_train_speakers,
        n_test_speakers=n_test_speakers,
        utts_per_speaker=utts_per_speaker,
        num_workers=num_workers,
    )
    if not _is_int(seed) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if not _is_int(sample_rate) or sample_rate < 8000:
        raise ConfigError(
            f"sample_rate must be an integer of at least 8000 Hz, "
            f"got {sample_rate!r}"
        )
    seed, sample_rate = int(seed), int(sample_rate)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} is a file; give a folder for the corpus")
    options = _options(
        n_train_speakers=n_train_speakers,
        n_test_speakers=n_test_speakers,
        utts_per_speaker=utts_per_speaker,
        seed=seed,
        sample_rate=sample_rate,
    )
    files = corpus_files(
        out,
        n_train_speakers=n_train_speakers,
        n_test_speakers=n_test_speakers,
        utts_per_speaker=utts_per_speaker,
    )
    if outputs_up_to_date(out, files, options, options_file=OPTIONS_FILE):
        logger.info("Synthetic corpus in %s is up to date, skipping", out)
        return out
    ours = (out / OPTIONS_FILE).is_file() or (out / _PARTIAL_MARK).is_file()
    if out.is_dir() and any(out.iterdir()) and not ours:
        raise ConfigError(
            f"{out} is not empty and was not made by this generator; "
            "give an empty or new folder for the corpus"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / _PARTIAL_MARK).touch()
    (out / OPTIONS_FILE).unlink(missing_ok=True)
    for split, _ in _SPLITS:  # remove what an older run left
        shutil.rmtree(out / split, ignore_errors=True)

    layout = _layout(n_train_speakers, n_test_speakers, utts_per_speaker)
    jobs, genders = [], {}
    for split_idx, (split, speakers) in enumerate(layout.items()):
        voices = _split_voices(seed, split_idx, len(speakers))
        genders[split] = [v.gender for v in voices]
        for spk_idx, (spk, utt_list) in enumerate(speakers):
            folder = out / split / "waves" / spk
            folder.mkdir(parents=True, exist_ok=True)
            jobs += [
                _Job(
                    path=folder / f"{utt}.wav",
                    utt_id=utt,
                    voice=voices[spk_idx],
                    keys=(seed, split_idx, spk_idx, utt_idx),
                    sample_rate=sample_rate,
                )
                for utt_idx, utt in enumerate(utt_list)
            ]
    logger.info(
        "Synthesizing %d utterances into %s with %d worker(s)",
        len(jobs),
        out,
        num_workers,
    )
    if num_workers > 1:
        with multiprocessing.get_context().Pool(num_workers) as pool:
            texts = dict(pool.imap_unordered(_run_job, jobs, chunksize=4))
    else:
        texts = dict(map(_run_job, jobs))

    for split, speakers in layout.items():
        with atomic_write(out / split / "prompts.txt") as f:
            for _, utt_list in speakers:
                for utt in utt_list:
                    f.write(f"{utt} {texts[utt]}\n")
        with atomic_write(out / split / "genders.txt") as f:
            for (spk, _), gender in zip(speakers, genders[split], strict=True):
                f.write(f"{spk} {gender}\n")
    save_options(out, options, options_file=OPTIONS_FILE)
    (out / _PARTIAL_MARK).unlink()
    return out
