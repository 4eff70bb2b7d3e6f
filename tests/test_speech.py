"""The speech check: non-speech is refused, speech is not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from deep_speaker_sb.dataio import read_manifest, utterances
from deep_speaker_sb.speech import (
    NoSpeechError,
    SpeechCheck,
    check_speech,
    speech_statistics,
)
from tests.conftest import HANG_TIMEOUT_S, ROOT, SCRIPT_ENV

SR = 8000


def _signals() -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(0)
    t = np.arange(3 * SR) / SR
    spec = np.fft.rfft(rng.standard_normal(len(t)))
    pink = np.fft.irfft(spec / np.sqrt(np.maximum(np.arange(len(spec)), 1)))
    out = {
        "silence": np.zeros_like(t),
        "one sample": np.array([0.5]),
        "white noise": 0.1 * rng.standard_normal(len(t)),
        "clipped noise": np.clip(3 * rng.standard_normal(len(t)), -1, 1),
        "pink noise": 0.2 * pink / np.abs(pink).max(),
        "tone": 0.5 * np.sin(2 * np.pi * 440 * t),
        "DC": np.full_like(t, 0.3),
        "hum": 0.2 + 0.1 * np.sin(2 * np.pi * 50 * t),
    }
    return {k: torch.from_numpy(v.astype(np.float32)) for k, v in out.items()}


@pytest.mark.parametrize("array", ["torch", "numpy"])
@pytest.mark.parametrize("kind", sorted(_signals()))
def test_non_speech_is_refused(kind, array):
    # numpy too: the torch-free runtime runs this very check
    wav = _signals()[kind]
    wav = wav.numpy() if array == "numpy" else wav
    with pytest.raises(NoSpeechError, match=f"{kind}.wav holds no speech"):
        check_speech(wav, SR, SpeechCheck(), f"{kind}.wav")


def test_the_check_imports_no_torch():
    code = (
        "import sys\n"
        "import deep_speaker_sb.runtime, deep_speaker_sb.speech\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=SCRIPT_ENV,
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT_S,
    )
    assert run.returncode == 0, run.stderr


def test_prepared_speech_passes(tiny_prepared):
    utts = utterances(read_manifest(tiny_prepared / "test.csv"))
    for utt in utts.values():
        wav, sr = sf.read(utt.wav, dtype="float32")
        check_speech(torch.from_numpy(wav), sr, SpeechCheck(), utt.wav)
    # and it is the thresholds that decide
    wav, sr = sf.read(next(iter(utts.values())).wav, dtype="float32")
    seconds, spread = speech_statistics(
        torch.from_numpy(wav), sr, SpeechCheck()
    )
    strict = SpeechCheck.from_config({"min_dynamic_db": spread + 1})
    assert strict.min_speech_seconds == SpeechCheck().min_speech_seconds
    with pytest.raises(NoSpeechError, match="varies by"):
        check_speech(torch.from_numpy(wav), sr, strict)
    long = SpeechCheck.from_config({"min_speech_seconds": seconds + 1})
    with pytest.raises(NoSpeechError, match="needs"):
        check_speech(torch.from_numpy(wav), sr, long)


def test_model_refuses_silence(tiny_prepared, tmp_path):
    from speechbrain.processing.features import InputNormalization

    from deep_speaker_sb.export import export_pretrained
    from deep_speaker_sb.features import Features
    from deep_speaker_sb.inference import DeepSpeaker, load_without_yaml
    from deep_speaker_sb.lobes.rescnn import ResCNN
    from tests.conftest import run_script

    folder = export_pretrained(
        tmp_path / "pretrained",
        compute_features=Features(),
        mean_var_norm=InputNormalization(norm_type="sentence"),
        embedding_model=ResCNN(channels=(4, 8), emb_dim=16).eval(),
        threshold=0.0,
        card={},
    )
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(3 * SR, "float32"), SR)
    for model in (
        DeepSpeaker.from_hparams(source=folder, run_opts={"device": "cpu"}),
        load_without_yaml(folder),
    ):
        with pytest.raises(NoSpeechError, match="silence.wav"):
            model.encode_file(silence)
        assert model.encode_file(silence, require_speech=False).shape == (16,)
    # verify.py gives no speaker: one error line, exit 1 (it named a
    # speaker before: threshold 0 accepts any positive cosine)
    proc = run_script(
        "verify.py",
        "--model", folder, "--wav", silence,
        "--enrol", tiny_prepared / "test.csv", "--device", "cpu",
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout
    errors = [x for x in proc.stderr.splitlines() if x.startswith("error")]
    assert len(errors) == 1 and "holds no speech" in errors[0]
    assert "speaker:" not in proc.stdout
    # a silent enrolment file is refused too (it pulled its speaker's mean)
    enrol = tmp_path / "enrol"
    rows = utterances(read_manifest(tiny_prepared / "test.csv"))
    for u in rows.values():  # two files of each test speaker
        (enrol / u.spk_id).mkdir(parents=True, exist_ok=True)
        if len(list((enrol / u.spk_id).iterdir())) < 2:
            (enrol / u.spk_id / f"{u.utt_id}.wav").write_bytes(
                Path(u.wav).read_bytes()
            )
    query = sorted((enrol / u.spk_id).iterdir())[0]
    args = ("--model", folder, "--wav", query, "--enrol", enrol)
    proc = run_script("verify.py", *args, "--device", "cpu")
    assert proc.returncode == 0 and "speaker:" in proc.stdout, proc.stderr
    sf.write(enrol / u.spk_id / "silent.wav", np.zeros(3 * SR), SR)
    proc = run_script("verify.py", *args, "--device", "cpu")
    assert proc.returncode == 1, proc.stdout
    errors = [x for x in proc.stderr.splitlines() if x.startswith("error")]
    assert len(errors) == 1 and "silent.wav holds no speech" in errors[0]


def _speechy(seconds: float, f0: float) -> np.ndarray:
    """Harmonics under a syllable-rate envelope: passes the check."""
    t = np.arange(int(seconds * SR)) / SR
    sig = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 15))
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0.02, 1)
    return (0.3 * sig * envelope / np.abs(sig).max()).astype(np.float32)


def test_every_file_path_checks_speech(tmp_path):
    """verify_files / encode_files / register.identify refused nothing:
    two silences (or DC +0.3 and DC -0.2) were "the same speaker"."""
    from speechbrain.processing.features import InputNormalization

    from deep_speaker_sb.export import export_pretrained
    from deep_speaker_sb.features import Features
    from deep_speaker_sb.inference import DeepSpeaker
    from deep_speaker_sb.lobes.rescnn import ResCNN
    from deep_speaker_sb.register import identify

    torch.manual_seed(0)
    folder = export_pretrained(
        tmp_path / "pretrained",
        compute_features=Features(n_mels=24),
        mean_var_norm=InputNormalization(norm_type="sentence"),
        embedding_model=ResCNN(
            n_mels=24, channels=(4, 8), emb_dim=16, blocks_per_stage=1
        ).eval(),
        threshold=0.0,
        card={},
        onnx=False,
    )
    wavs = {
        "zeros_3s": np.zeros(3 * SR),
        "zeros_5s": np.zeros(5 * SR),
        "dc_pos": np.full(3 * SR, 0.3),
        "dc_neg": np.full(3 * SR, -0.2),
        "speech_a": _speechy(2.0, 120.0),
        "speech_b": _speechy(2.5, 180.0),
    }
    path = {k: tmp_path / f"{k}.wav" for k in wavs}
    for k, wav in wavs.items():
        sf.write(path[k], wav, SR)
    model = DeepSpeaker.from_hparams(source=folder, run_opts={"device": "cpu"})
    for a, b in (("zeros_3s", "zeros_5s"), ("dc_pos", "dc_neg")):
        with pytest.raises(NoSpeechError, match=f"{a}.wav holds no speech"):
            model.verify_files(path[a], path[b])
        score, _ = model.verify_files(path[a], path[b], require_speech=False)
        assert -1.0 <= score <= 1.0
    score, same = model.verify_files(path["speech_a"], path["speech_b"])
    assert same == (score > 0.0)
    with pytest.raises(NoSpeechError, match="dc_neg.wav holds no speech"):
        model.encode_files([path["speech_a"], path["dc_neg"]])
    embs = model.encode_files(
        [path["speech_a"], path["dc_neg"]], require_speech=False
    )
    assert embs.shape == (2, 16)
    # the library's identify: no silent enrolment file, no silent query
    with pytest.raises(NoSpeechError, match="zeros_5s.wav holds no speech"):
        identify(
            model,
            path["speech_a"],
            {"A": [path["speech_b"]], "B": [path["zeros_5s"]]},
        )
    with pytest.raises(NoSpeechError, match="zeros_3s.wav holds no speech"):
        identify(model, path["zeros_3s"], {"A": [path["speech_b"]]})
