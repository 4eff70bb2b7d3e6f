"""Tests of the synthetic demo corpus (VIVOS layout, determinism, skip)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from deep_speaker_sb.cli import run_cli
from deep_speaker_sb.data import synthetic
from deep_speaker_sb.data.synthetic import OPTIONS_FILE, generate_corpus
from deep_speaker_sb.errors import ConfigError, UserError
from tests.conftest import load_script, run_script

SCRIPT = "recipes/demo/generate_corpus.py"

SMALL = dict(n_train_speakers=1, n_test_speakers=1, utts_per_speaker=2)


def _wavs(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*.wav"))
    }


def _read_pairs(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict(line.split(" ", 1) for line in lines)


def test_deterministic_whatever_the_workers(tmp_path):
    a = generate_corpus(tmp_path / "a", seed=3, **SMALL)
    b = generate_corpus(tmp_path / "b", seed=3, num_workers=2, **SMALL)
    c = generate_corpus(tmp_path / "c", seed=4, **SMALL)
    assert a == tmp_path / "a"
    wav_a, wav_b, wav_c = _wavs(a), _wavs(b), _wavs(c)
    assert len(wav_a) == 4
    assert wav_a == wav_b
    for split in ("train", "test"):
        for name in ("prompts.txt", "genders.txt"):
            assert (a / split / name).read_bytes() == (
                b / split / name
            ).read_bytes()
    assert wav_a.keys() == wav_c.keys()
    assert all(wav_a[k] != wav_c[k] for k in wav_a)


def test_vivos_layout(tiny_corpus):
    root = tiny_corpus
    expected = {"train": ("VIVOSSPK", 4), "test": ("VIVOSDEV", 3)}
    all_speakers = {}
    for split, (prefix, n_spk) in expected.items():
        waves = root / split / "waves"
        speakers = sorted(p.name for p in waves.iterdir())
        assert speakers == [f"{prefix}{i:02d}" for i in range(1, n_spk + 1)]
        all_speakers[split] = set(speakers)
        wavs = sorted(waves.glob("*/*.wav"))
        assert len(wavs) == n_spk * 6
        prompts = _read_pairs(root / split / "prompts.txt")
        genders = _read_pairs(root / split / "genders.txt")
        assert set(prompts) == {p.stem for p in wavs}
        assert set(genders) == set(speakers)
        assert set(genders.values()) <= {"m", "f"}
        for wav in wavs:
            spk, num = wav.stem.rsplit("_", 1)
            assert spk == wav.parent.name
            assert num[0] == "R" and len(num) == 4 and num[1:].isdigit()
            words = prompts[wav.stem].split()
            assert words and all(w.isupper() for w in words)
    assert not all_speakers["train"] & all_speakers["test"]


def test_audio_format_and_silence(tiny_corpus):
    durations = []
    for wav in sorted(tiny_corpus.glob("*/waves/*/*.wav")):
        info = sf.info(wav)
        assert (info.samplerate, info.channels) == (16000, 1)
        assert (info.format, info.subtype) == ("WAV", "PCM_16")
        x, sr = sf.read(wav)
        durations.append(len(x) / sr)
        edge = int(0.2 * sr)

        def energy(seg):
            return float(np.mean(seg**2))

        middle = energy(x[int(0.8 * sr) : -int(0.8 * sr)])
        assert middle > 0
        assert energy(x[:edge]) < 0.01 * middle, wav.name
        assert energy(x[-edge:]) < 0.01 * middle, wav.name
    assert 2.0 <= min(durations) and max(durations) <= 6.0


def test_idempotent_and_regenerates_on_new_options(tmp_path):
    root = generate_corpus(tmp_path / "c", seed=1, **SMALL)
    wav = root / "train" / "waves" / "VIVOSSPK01" / "VIVOSSPK01_R002.wav"
    stamps = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    generate_corpus(root, seed=1, **SMALL)
    after = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    assert after == stamps
    assert (root / OPTIONS_FILE).is_file()
    # Other options: regenerated, and nothing stale is left behind.
    generate_corpus(root, seed=2, **SMALL)
    generate_corpus(root, seed=1, **{**SMALL, "utts_per_speaker": 1})
    assert not wav.exists()
    assert len(_wavs(root)) == 2


def test_refuses_foreign_folder_and_bad_options(tmp_path):
    foreign = tmp_path / "real_vivos"
    (foreign / "train").mkdir(parents=True)
    with pytest.raises(UserError, match="empty or new folder"):
        generate_corpus(foreign, **SMALL)
    with pytest.raises(ValueError, match="n_train_speakers"):
        generate_corpus(tmp_path / "x", n_train_speakers=0)
    with pytest.raises(ValueError, match="sample_rate"):
        generate_corpus(tmp_path / "x", sample_rate=4000)
    with pytest.raises(ValueError, match="seed"):
        generate_corpus(tmp_path / "x", seed=-1)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        generate_corpus(a_file, **SMALL)


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    opts = ["--n-train-speakers", "1", "--n-test-speakers", "1"]
    opts += ["--utts-per-speaker", "1", "--seed", "5"]
    done = run_script(SCRIPT, "--out", out, *opts)
    assert done.returncode == 0, done.stderr
    assert str(out) in done.stdout and "2 wav files" in done.stdout
    assert len(_wavs(out)) == 2
    # The options also take SpeechBrain's underscore spelling.
    main = load_script(SCRIPT).main
    under = tmp_path / "under"
    opts_ = ["--n_train_speakers", "2", "--n_test_speakers", "1"]
    assert main(["--out", str(under), *opts_, "--utts_per_speaker", "1"]) in (
        0,
        None,
    )
    assert len(_wavs(under)) == 3
    # A user mistake is one error line and exit status 1.
    bad = ["--out", str(out / "train" / "prompts.txt")]
    assert run_cli(lambda: main(bad)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "folder" in err


def test_library_has_no_command_line():
    assert not hasattr(synthetic, "main")
    assert "argparse" not in vars(synthetic)
