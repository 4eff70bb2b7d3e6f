"""Tests of bench/tts_corpus.py, the speech-synthesizer benchmark corpus.

The channel effects, the plan and the voice catalogue are pure and always
tested (numpy input); building a tiny corpus needs espeak-ng, MBROLA (the
de1 and us3 voices) and flite, and is skipped where they are missing (a
fresh CI machine): ``sudo bash bench/install_tts.sh`` installs them.
"""

from __future__ import annotations

import doctest
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import load_script, run_script

tts = load_script("bench/tts_corpus.py")

SR = 16000


def _sine(freq: float, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    return amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR)


def _power_db(x: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(x**2)))


def test_doctests() -> None:
    result = doctest.testmod(
        tts,
        optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS,
    )
    assert result.attempted > 20
    assert result.failed == 0


# --------------------------------------------------------------------------
# Channel effects on numpy input
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("freq", "passes"),
    [(80, False), (200, False), (500, True), (1000, True), (3000, True)]
    + [(4000, False), (6000, False)],
)
def test_telephone_band(freq: float, passes: bool) -> None:
    x = _sine(freq)
    y = tts.telephone_band(x, SR)
    assert y.shape == x.shape
    gain = _power_db(y[2000:-2000]) - _power_db(x[2000:-2000])
    if passes:
        assert gain > -1.5
    else:
        assert gain < -10


@pytest.mark.parametrize("codec", ["mulaw", "alaw"])
def test_codec_round_trip(codec: str) -> None:
    roundtrip = {"mulaw": tts.mulaw_roundtrip, "alaw": tts.alaw_roundtrip}
    code = roundtrip[codec]
    rng = np.random.default_rng(0)
    x = np.clip(0.3 * rng.standard_normal(SR), -1, 1)
    y = code(x)
    assert y.shape == x.shape and np.all(np.abs(y) <= 1)
    snr = _power_db(x) - _power_db(y - x)
    assert 30 < snr < 45  # 8-bit companding: ~38 dB, not lossless
    # The decoded values are the codec's levels: coding them again keeps
    # them (up to float rounding), and there are at most 256 of them.
    assert np.allclose(code(y), y, atol=1e-9)
    assert len(np.unique(np.round(y, 9))) <= 256
    # Companding: small signals keep a similar relative precision.
    small = 0.01 * x
    assert _power_db(small) - _power_db(code(small) - small) > 25


@pytest.mark.parametrize("color", ["white", "pink", "brown"])
@pytest.mark.parametrize("snr_db", [5.0, 12.5, 30.0])
def test_add_noise_snr(color: str, snr_db: float) -> None:
    rng = np.random.default_rng(1)
    speech = _sine(220, 3.0) * (1 + np.sin(np.arange(3 * SR) / 2000))
    noise = tts.colored_noise(len(speech), color, rng)
    y = tts.add_noise(speech, noise, snr_db)
    measured = _power_db(speech) - _power_db(y - speech)
    assert abs(measured - snr_db) < 0.5


def test_noise_colours() -> None:
    rng = np.random.default_rng(2)
    n = 10 * SR
    freqs = np.fft.rfftfreq(n, 1 / SR)

    def slope_db(color: str) -> float:  # 200-400 Hz band vs 2-4 kHz band
        p = np.abs(np.fft.rfft(tts.colored_noise(n, color, rng))) ** 2
        low = p[(freqs >= 200) & (freqs < 400)].mean()
        high = p[(freqs >= 2000) & (freqs < 4000)].mean()
        return float(10 * np.log10(low / high))

    assert abs(slope_db("white")) < 1
    assert abs(slope_db("pink") - 10) < 1.5
    assert abs(slope_db("brown") - 20) < 1.5


def test_room_response_decays() -> None:
    h = tts.room_response(SR, 0.4, 3.0, np.random.default_rng(3))
    tail = h[1:] ** 2
    first = tail[: int(0.05 * SR)].mean()
    late = tail[int(0.35 * SR) : int(0.4 * SR)].mean()
    assert 45 < 10 * np.log10(first / late) < 60  # ~52 dB in 0.35 s
    y = tts.apply_channel(
        _sine(300),
        SR,
        tts.Channel(rt60=0.4, drr_db=3.0),
        np.random.default_rng(0),
    )
    assert y.shape == (SR,)


def test_apply_channel_deterministic() -> None:
    ch = tts.Channel(
        rt60=0.3,
        drr_db=4.0,
        noise="brown",
        snr_db=8.0,
        telephone=True,
        codec="mulaw",
        peak_db=-9.0,
        floor_db=-50.0,
    )
    x = _sine(180, 2.0)
    a = tts.apply_channel(x, SR, ch, np.random.default_rng(5))
    b = tts.apply_channel(x, SR, ch, np.random.default_rng(5))
    c = tts.apply_channel(x, SR, ch, np.random.default_rng(6))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.abs(a).max() == pytest.approx(10 ** (-9 / 20), rel=0.02)
    clean = tts.apply_channel(x, SR, tts.Channel(), np.random.default_rng(5))
    # no effect but the level (-3 dBFS peak) and the -60 dB noise floor
    residual = clean - x / np.abs(x).max() * 10 ** (-3 / 20)
    floor_db = _power_db(residual) - 20 * np.log10(10 ** (-3 / 20))
    assert abs(floor_db - (-60)) < 0.5


def test_train_and_test_channel_mixes_differ() -> None:
    def draws(mix: object) -> list:
        rng = np.random.default_rng(0)
        return [tts.draw_channel(mix, rng) for _ in range(2000)]

    train, test = draws(tts.TRAIN_MIX), draws(tts.TEST_MIX)
    train_noise = Counter(c.noise for c in train)
    test_noise = Counter(c.noise for c in test)
    assert set(train_noise) == {"", "white", "pink"}
    assert set(test_noise) == {"", "pink", "brown", "babble"}
    assert {c.codec for c in train} == {"", "mulaw"}
    assert "alaw" in {c.codec for c in test}
    for chans in (train, test):
        snrs = [c.snr_db for c in chans if c.noise]
        assert 5 <= min(snrs) and max(snrs) <= 30
        assert 0 < sum(c.telephone for c in chans) < len(chans)
        assert 0 < sum(c.rt60 > 0 for c in chans) < len(chans)
    assert np.mean([c.telephone for c in test]) > np.mean(
        [c.telephone for c in train]
    )


# --------------------------------------------------------------------------
# Voices and plan
# --------------------------------------------------------------------------


def test_catalogue() -> None:
    voices = tts.catalogue()
    speakers = [v.speaker for v in voices]
    assert len(set(speakers)) == len(speakers)
    assert all("_" not in s for s in speakers)
    by = Counter((v.split, v.test, v.family) for v in voices)
    assert by[("train", None, "mbrola")] >= 60
    assert by[("test", "same", "mbrola")] >= 12
    cross = sum(n for (_, t, _), n in by.items() if t == "cross")
    assert cross >= 12
    for v in voices:
        # the family and the split are in the speaker id
        family, split, _ = v.speaker.split("-", 2)
        assert (family, split) == (v.family, v.split)
        assert v.gender in ("m", "f") and v.lang in tts.WORDS
        if v.split == "train":
            assert v.family == "mbrola" and v.test is None
        elif v.family == "mbrola":
            assert v.test == "same"
        else:
            assert v.test == "cross"
    # a held-out MBROLA voice is not also a training voice
    train_names = {v.name for v in voices if v.split == "train"}
    assert not train_names & set(tts.SAME_FAMILY_TEST)


def test_plan_is_deterministic_and_in_range() -> None:
    voices = tts.catalogue()
    a = tts.plan_corpus(voices, 3, seed=0)
    assert a == tts.plan_corpus(voices, 3, seed=0)
    assert a != tts.plan_corpus(voices, 3, seed=1)
    assert len(a) == 3 * len(voices)
    assert len({p.utt_id for p in a}) == len(a)
    for p in a:
        assert p.utt_id.rpartition("_")[0] == p.voice.speaker
        assert 0.85 <= p.rate <= 1.2 and -1 <= p.pitch <= 1
        assert p.text(p.n_words) == p.text(p.n_words)
        assert len(p.text(p.n_words).split()) == p.n_words
    # one voice's plan does not depend on which other voices are built
    alone = tts.plan_corpus(voices[:1], 3, seed=0)
    assert alone == [p for p in a if p.voice == voices[0]]
    assert {p.key() for p in alone} == {
        p.key() for p in a if p.voice == voices[0]
    }


def test_missing_tool_is_one_error_line(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path), "OMP_NUM_THREADS": "1"}
    proc = run_script(
        "bench/tts_corpus.py",
        "--out",
        tmp_path / "c",
        "--voices",
        "de1",
        env=env,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: espeak-ng not found")
    assert "install_tts.sh" in lines[0]


def test_unknown_voice_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(tts.ConfigError, match="unknown voice"):
        tts.select_voices(["nosuchvoice"])


# --------------------------------------------------------------------------
# A tiny corpus (needs the synthesizers)
# --------------------------------------------------------------------------

SMOKE_VOICES = ("mbrola-train-de1", "mbrola-test-us3", "flite-test-awb")


def _have_synthesizers() -> bool:
    tools = all(shutil.which(t) for t in ("espeak-ng", "mbrola", "flite"))
    voices = all(Path("/usr/share/mbrola", v).exists() for v in ("de1", "us3"))
    return tools and voices


needs_tts = pytest.mark.skipif(
    not _have_synthesizers(),
    reason="espeak-ng, mbrola (de1, us3) or flite not installed "
    "(sudo bash bench/install_tts.sh)",
)


def _build(out: Path, workers: int) -> object:
    return run_script(
        "bench/tts_corpus.py",
        "--out",
        out,
        "--utts_per_voice",
        2,
        "--workers",
        workers,
        "--voices",
        *SMOKE_VOICES,
    )


def _files(root: Path) -> dict[str, bytes]:
    skip = {"summary.json"}  # holds the build time
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in skip
    }


@needs_tts
def test_tiny_corpus(tmp_path: Path) -> None:
    out = tmp_path / "tts"
    proc = _build(out, workers=2)
    assert proc.returncode == 0, proc.stderr

    # layout, as VIVOS
    wavs = sorted(out.glob("*/waves/*/*.wav"))
    assert sorted(w.stem for w in wavs) == sorted(
        f"{s}_R00{i}" for s in SMOKE_VOICES for i in (1, 2)
    )
    for w in wavs:
        info = sf.info(str(w))
        assert (info.samplerate, info.channels, info.subtype) == (
            16000,
            1,
            "PCM_16",
        )
        assert 2.0 <= info.duration <= 8.0
        assert w.parent.name == w.stem.rpartition("_")[0]
        x, _ = sf.read(str(w))
        assert np.abs(x).max() > 0.01
    for split in ("train", "test"):
        prompts = (out / split / "prompts.txt").read_text("utf-8")
        ids = [line.split(maxsplit=1)[0] for line in prompts.splitlines()]
        assert ids == sorted(w.stem for w in out.glob(f"{split}/waves/*/*"))
        assert all(len(line.split()) >= 2 for line in prompts.splitlines())
        genders = (out / split / "genders.txt").read_text("utf-8").split()
        assert set(genders[1::2]) <= {"m", "f"}
    voices = json.loads((out / "voices.json").read_text("utf-8"))
    assert {k: (v["family"], v["test"]) for k, v in voices.items()} == {
        "mbrola-train-de1": ("mbrola", None),
        "mbrola-test-us3": ("mbrola", "same"),
        "flite-test-awb": ("flite", "cross"),
    }
    assert voices["flite-test-awb"]["synthesizer"] == "flite"

    # the same bytes with one worker, in another folder
    again = tmp_path / "again"
    assert _build(again, workers=1).returncode == 0
    assert _files(out) == _files(again)

    # complete: a second run does nothing
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    proc = _build(out, workers=2)
    assert proc.returncode == 0 and "nothing to do" in proc.stdout
    after = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert before == after

    # interrupted: a missing WAV and index are made again, identically
    reference = _files(out)
    wavs[0].unlink()
    (out / "voices.json").unlink()
    proc = _build(out, workers=2)
    assert proc.returncode == 0, proc.stderr
    assert "5 already made" in proc.stderr
    assert _files(out) == reference

    # other options for the same folder: one error line
    proc = run_script(
        "bench/tts_corpus.py", "--out", out, "--voices", "de1", "--seed", 3
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: ") and "other options" in proc.stderr
