"""ONNX export, the onnx backends of DeepSpeaker and the torch-free runtime.

Narrow untrained models stand in for trained ones; the torch path
(:func:`compute_embeddings`) is the reference every ONNX output is
compared with.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from deep_speaker_sb import runtime as rt
from deep_speaker_sb.embedding import EMBEDDING_MODULES, compute_embeddings
from deep_speaker_sb.errors import ConfigError, MissingFileError
from deep_speaker_sb.export import export_pretrained
from deep_speaker_sb.inference import DeepSpeaker
from deep_speaker_sb.onnx_export import (
    ONNX_FILE,
    ONNX_INT8_FILE,
    OPSET,
    OnnxFeatures,
)
from deep_speaker_sb.runtime import OnnxSpeaker, similarity
from deep_speaker_sb.speech import NoSpeechError
from tests.conftest import (
    HANG_TIMEOUT_S,
    ROOT,
    SCRIPT_ENV,
    SR,
    export_narrow,
    narrow_parts,
    run_in_process,
    run_script,
    speech_like,
)


@pytest.fixture(scope="module", params=["fbank", "mfcc"])
def exported(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp(request.param) / "pretrained"
    parts = export_narrow(folder, request.param)
    return folder, dict(zip(EMBEDDING_MODULES, parts, strict=True))


def _cosines(a, b) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (
        (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    )


@pytest.mark.parametrize("kind", ["fbank", "mfcc"])
def test_onnx_features_match_torch_features(kind):
    feats = narrow_parts(kind)[0]
    for n in (799, 8000, 12345):
        x = torch.from_numpy(speech_like(n / SR, n))[None]
        ref, out = feats(x), OnnxFeatures(feats)(x)
        assert out.shape == ref.shape
        # dB features: equal within float32 rounding of FFT vs DFT
        assert (out - ref).abs().max() < 1e-2


def test_export_folder_holds_and_records_the_graphs(exported):
    folder, _ = exported
    assert (folder / ONNX_FILE).is_file()
    assert (folder / ONNX_INT8_FILE).is_file()
    entry = json.loads((folder / "config.json").read_text())["onnx"]
    assert entry["fp32"] == ONNX_FILE and entry["int8"] == ONNX_INT8_FILE
    assert entry["opset"] == OPSET and entry["torch"] and entry["onnxruntime"]
    card = (folder / "model_card.md").read_text()
    assert f"| ONNX | {ONNX_FILE}, {ONNX_INT8_FILE} (opset {OPSET}" in card


def test_onnx_matches_torch_on_random_padded_batches(exported):
    folder, mods = exported
    runtime = OnnxSpeaker(folder, threads=1)
    rng = np.random.default_rng(1)
    for batch in (1, 3, 5):
        n = rng.integers(1500, 20000, size=batch)
        waves = [speech_like(k / SR, int(k)) for k in n]
        longest = int(n.max()) + int(rng.integers(0, 800))  # extra padding
        wavs = np.zeros((batch, longest), np.float32)
        for i, w in enumerate(waves):
            wavs[i, : len(w)] = w
        lens = (n / longest).astype(np.float32)
        with torch.no_grad():
            ref = compute_embeddings(
                mods, torch.from_numpy(wavs), torch.from_numpy(lens)
            )
        out = runtime.embed_waveforms(wavs, lens)
        assert out.shape == (batch, 24)
        assert _cosines(out, ref.numpy()).min() >= 0.9999
        # padding does not change an embedding: each one alone
        for i, w in enumerate(waves):
            alone = runtime.embed_waveforms(w[None])
            assert np.abs(alone[0] - out[i]).max() < 1e-4


def test_deepspeaker_onnx_backends(exported, tmp_path):
    folder, _ = exported
    path = tmp_path / "speech.wav"
    sf.write(path, speech_like(2.5, 3), SR)
    embs = {}
    for backend in ("torch", "onnx", "onnx-int8"):
        model = DeepSpeaker.from_hparams(
            source=folder, run_opts={"device": "cpu"}, backend=backend
        )
        assert model.backend == backend
        embs[backend] = model.encode_file(path)
        batch = model.encode_batch(torch.rand(2, 8000) - 0.5)
        assert batch.shape == (2, 24) and batch.dtype == torch.float32
    assert float(embs["onnx"] @ embs["torch"]) >= 0.9999
    # int8 weights and activations: close, not equal (a loose bound)
    assert float(embs["onnx-int8"] @ embs["torch"]) > 0.97
    with pytest.raises(ConfigError, match="backend must be one of"):
        DeepSpeaker.from_hparams(source=folder, backend="tensorrt")


def test_deepspeaker_runs_a_given_onnx_graph(exported, tmp_path):
    """use_backend(graph=...) runs that file (bench/onnx_accuracy.py's
    other quantization), not the export's own graph."""
    folder, _ = exported
    path = tmp_path / "speech.wav"
    sf.write(path, speech_like(2.5, 3), SR)
    model = DeepSpeaker.from_hparams(source=folder, run_opts={"device": "cpu"})
    model.use_backend("onnx")
    fp32 = model.encode_file(path)
    model.use_backend("onnx-int8")
    int8 = model.encode_file(path)
    assert not torch.allclose(fp32, int8, atol=1e-4)
    other = tmp_path / "other.onnx"
    shutil.copy(folder / ONNX_INT8_FILE, other)
    model.use_backend("onnx", threads=1, graph=other)
    assert model.backend == "onnx"
    torch.testing.assert_close(model.encode_file(path), int8)
    with pytest.raises(ConfigError, match="needs an ONNX backend"):
        model.use_backend("torch", graph=other)
    with pytest.raises(MissingFileError, match="ONNX graph not found"):
        model.use_backend("onnx", graph=tmp_path / "missing.onnx")


def test_export_without_onnx_says_how_to_add_it(tmp_path, tiny_prepared):
    folder = tmp_path / "pretrained"
    _, _, model = export_narrow(folder, "fbank", onnx=False)
    (folder / "config.json").unlink()  # as exports made before config.json
    assert not (folder / ONNX_FILE).exists()
    with pytest.raises(MissingFileError, match="export_onnx.py"):
        DeepSpeaker.from_hparams(source=folder, backend="onnx")
    with pytest.raises(MissingFileError, match="export_onnx.py"):
        OnnxSpeaker(folder)
    # without config.json only the folder's YAML can build the model: it
    # runs only when asked to
    refused = run_script("export_onnx.py", folder)
    assert refused.returncode == 1
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert "config.json missing" in lines[0] and "--trust_yaml" in lines[0]
    assert not (folder / ONNX_FILE).exists()
    run = run_script(
        "export_onnx.py",
        folder,
        "--calibration_csv",
        tiny_prepared / "train.csv",
        "--trust_yaml",
    )
    assert run.returncode == 0, run.stderr
    assert (folder / ONNX_FILE).is_file()
    assert (folder / ONNX_INT8_FILE).is_file()
    config = json.loads((folder / "config.json").read_text())
    assert config["model"] == model.config
    assert config["onnx"]["int8"] == ONNX_INT8_FILE
    card = (folder / "model_card.md").read_text()
    assert card.count("| ONNX |") == 1
    torch_model = DeepSpeaker.from_hparams(source=folder)
    x = torch.from_numpy(speech_like(1.7, 11))[None]
    ref = torch_model.encode_batch(x).numpy()
    assert (
        _cosines(OnnxSpeaker(folder).embed_waveforms(x.numpy()), ref)[0]
        > 0.9999
    )
    bad = run_script("export_onnx.py", tmp_path / "nowhere")
    assert bad.returncode == 1
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: model folder not found")


#: Runs in a subprocess where ``import torch`` fails: embeds two files with
#: the runtime and prints the embeddings and the score as JSON; two more
#: files (silence) must be refused by the speech check.
_NO_TORCH = """
import json, sys
class NoTorch:  # any import of torch, torchaudio or speechbrain fails
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "torchaudio", "speechbrain"):
            raise ImportError(f"{name} is made unimportable")
sys.meta_path.insert(0, NoTorch())
try:
    import torch
    sys.exit("torch imported")
except ImportError:
    pass
from deep_speaker_sb import runtime
from deep_speaker_sb.speech import NoSpeechError
model = runtime.OnnxSpeaker(sys.argv[1], threads=1)
embs = runtime.encode_files(sys.argv[2:4], model)
try:
    model.verify(*sys.argv[4:6])
    sys.exit("two silences verified")
except NoSpeechError as exc:
    refused = str(exc)
loose = model.verify(*sys.argv[4:6], require_speech=False)
assert not [m for m in sys.modules if m.split(".")[0] == "torch"]
print(json.dumps({"embs": embs.tolist(),
                  "score": runtime.similarity(embs[0], embs[1]),
                  "threshold": model.threshold,
                  "refused": refused, "loose": loose[0]}))
"""


def test_runtime_runs_without_torch(exported, tmp_path):
    folder, mods = exported
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    wav_a, wav_b = speech_like(1.5, 5), speech_like(2.2, 6)
    sf.write(a, wav_a, SR)
    sf.write(b, (wav_b * 32767).astype(np.int16), SR, subtype="PCM_16")
    z3, z5 = tmp_path / "zeros_3s.wav", tmp_path / "zeros_5s.wav"
    sf.write(z3, np.zeros(3 * SR), SR)
    sf.write(z5, np.zeros(5 * SR), SR)
    run = subprocess.run(
        [sys.executable, "-c", _NO_TORCH, *map(str, (folder, a, b, z3, z5))],
        cwd=ROOT,
        env=SCRIPT_ENV,
        capture_output=True,
        text=True,
        timeout=HANG_TIMEOUT_S,
    )
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.strip().splitlines()[-1])
    plain = DeepSpeaker.from_hparams(source=folder, run_opts={"device": "cpu"})
    ref = torch.stack(
        [plain.encode_file(p, require_speech=False) for p in (a, b)]
    )
    assert _cosines(out["embs"], ref.numpy()).min() >= 0.9999
    assert out["score"] == pytest.approx(float(ref[0] @ ref[1]), abs=1e-3)
    assert out["threshold"] == pytest.approx(0.4)
    assert out["refused"].startswith(f"{z3} holds no speech")
    assert -1.0 <= out["loose"] <= 1.0


def test_runtime_refuses_non_speech(exported, tmp_path):
    """``OnnxSpeaker.verify`` said True for two silences (and DC +0.3 vs
    DC -0.2) before the runtime had a speech check."""
    folder, _ = exported
    model = OnnxSpeaker(folder, threads=1)
    files = {
        "zeros_3s": np.zeros(3 * SR),
        "zeros_5s": np.zeros(5 * SR),
        "dc_pos": np.full(3 * SR, 0.3),
        "dc_neg": np.full(3 * SR, -0.2),
        "speech": speech_like(2.5, 3),
    }
    path = {k: tmp_path / f"{k}.wav" for k in files}
    for k, wav in files.items():
        sf.write(path[k], wav, SR)
    for a, b in (("zeros_3s", "zeros_5s"), ("dc_pos", "dc_neg")):
        with pytest.raises(NoSpeechError, match=f"{a}.wav holds no speech"):
            model.verify(path[a], path[b])
        with pytest.raises(NoSpeechError, match=f"{b}.wav holds no speech"):
            model.encode_files([path["speech"], path[b]])
        assert -1 <= model.verify(path[a], path[b], require_speech=False)[0]
    model.check_speech(path["speech"])
    # the export's own thresholds (config.json's speech_check) are used
    strict = tmp_path / "strict"
    shutil.copytree(folder, strict)
    config = json.loads((strict / "config.json").read_text())
    config["speech_check"]["min_speech_seconds"] = 10.0
    (strict / "config.json").write_text(json.dumps(config))
    with pytest.raises(NoSpeechError, match="needs 10 s"):
        OnnxSpeaker(strict).encode_files([path["speech"]])


def test_runtime_resamples_and_scores(exported, tmp_path):
    folder, _ = exported
    model = OnnxSpeaker(folder, precision="int8")
    wav = speech_like(2.0, 9)
    up = np.repeat(wav, 2)  # crude 16 kHz copy: resampled back to 8 kHz
    sf.write(tmp_path / "8k.wav", wav, SR)
    sf.write(tmp_path / "16k.wav", np.stack([up, up], axis=1), 2 * SR)
    files = [tmp_path / "8k.wav", tmp_path / "16k.wav"]
    embs = model.encode_files(files)
    assert embs.shape == (2, 24)
    assert np.allclose(np.linalg.norm(embs, axis=1), 1.0, atol=1e-4)
    assert similarity(embs[0], embs[1]) > 0.9
    assert model.similarity(embs[0], embs[1]) == similarity(embs[0], embs[1])
    with pytest.raises(MissingFileError, match="audio file not found"):
        model.encode_files([tmp_path / "missing.wav"])
    # issue #20: embed / score are the deprecated names, for one release
    with pytest.warns(DeprecationWarning, match="embed is deprecated; use "):
        assert np.array_equal(model.embed(files), embs)
    with pytest.warns(DeprecationWarning, match="embed is deprecated; use "):
        assert np.array_equal(rt.embed(files, model), embs)
    with pytest.warns(DeprecationWarning, match="score is deprecated; use "):
        assert rt.score(embs[0], embs[1]) == similarity(embs[0], embs[1])
    with pytest.raises(ConfigError, match="precision"):
        OnnxSpeaker(folder, precision="fp16")


def test_verify_backend_flag(tiny_prepared, tmp_path):
    folder = tmp_path / "pretrained"
    export_narrow(folder, "fbank")
    run = run_script(
        "verify.py",
        "--model",
        folder,
        "--csv",
        tiny_prepared / "test.csv",
        "--backend",
        "onnx-int8",
        "--out",
        tmp_path / "out",
    )
    assert run.returncode == 0, run.stderr
    assert "EER" in run.stdout
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert 0.0 <= report["eer"] <= 1.0


def test_se_and_attentive_pooling_export_and_load(tmp_path):
    """The lobe options (squeeze-excitation, attentive statistics pooling,
    a time stride of 1, the frequency channel, batch norm on the pooled
    statistics) go into config.json, load
    without the YAML and through it, and the ONNX graph matches torch on a
    padded batch and on each utterance alone."""
    from deep_speaker_sb.inference import load_without_yaml

    options = {
        "se_reduction": 4,
        "pooling": "attentive_stats",
        "time_strides": [1, 2],
        "freq_coord": True,
        "pool_bn": True,
    }
    parts = narrow_parts("fbank", seed=3, **options)
    with torch.no_grad():  # attention weights far from uniform
        parts[2].attention.score.weight.mul_(20.0)
        bn = parts[2].pool_bn  # and pooled statistics that are not 0, 1
        bn.running_mean.uniform_(-1.0, 1.0)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
    folder = export_pretrained(
        tmp_path / "pretrained",
        compute_features=parts[0],
        mean_var_norm=parts[1],
        embedding_model=parts[2],
        threshold=0.4,
        card={"data": "unit test"},
        calibration=None,
    )
    config = json.loads((folder / "config.json").read_text())
    assert config["model"]["se_reduction"] == 4
    assert config["model"]["pooling"] == "attentive_stats"
    assert config["model"]["time_strides"] == [1, 2]
    assert config["model"]["freq_coord"] is True
    assert config["model"]["pool_bn"] is True
    mods = dict(zip(EMBEDDING_MODULES, parts, strict=True))
    n = np.array([3000, 11000, 7000])
    waves = [speech_like(k / SR, int(k)) for k in n]
    wavs = np.zeros((3, 11500), np.float32)
    for i, w in enumerate(waves):
        wavs[i, : len(w)] = w
    lens = (n / wavs.shape[1]).astype(np.float32)
    with torch.no_grad():
        ref = compute_embeddings(
            mods, torch.from_numpy(wavs), torch.from_numpy(lens)
        )
    plain = load_without_yaml(folder)
    assert plain.mods["embedding_model"].config == parts[2].config
    full = DeepSpeaker.from_hparams(source=folder, run_opts={"device": "cpu"})
    for loaded in (plain, full):
        out = loaded.encode_batch(
            torch.from_numpy(wavs), torch.from_numpy(lens)
        )
        assert torch.allclose(out, ref, atol=1e-5)
    runtime = OnnxSpeaker(folder, threads=1)
    out = runtime.embed_waveforms(wavs, lens)
    assert _cosines(out, ref.numpy()).min() >= 0.9999
    for i, w in enumerate(waves):
        alone = runtime.embed_waveforms(w[None])
        assert np.abs(alone[0] - out[i]).max() < 1e-4


def test_export_onnx_runs_the_yaml_only_with_trust_yaml(tmp_path):
    folder = tmp_path / "pretrained"
    export_narrow(folder, "fbank", onnx=False)
    marker = tmp_path / "code_ran"
    yaml = folder / "hyperparams.yaml"
    command = json.dumps(f"touch {shlex.quote(str(marker))}")
    yaml.write_text(
        yaml.read_text() + f"\n__hostile: !apply:os.system [{command}]\n"
    )
    config = (folder / "config.json").read_text()
    # an export without config.json: refused, nothing runs
    (folder / "config.json").unlink()
    code, err = run_in_process("export_onnx.py", [str(folder)])
    assert code == 1 and "--trust_yaml" in err
    assert not marker.exists() and not (folder / ONNX_FILE).exists()
    # with config.json: rebuilt from it, nothing runs
    (folder / "config.json").write_text(config)
    code, err = run_in_process("export_onnx.py", [str(folder)])
    assert code == 0, err
    assert not marker.exists() and (folder / ONNX_FILE).is_file()
    # the opt-in loads through the YAML
    code, err = run_in_process("export_onnx.py", [str(folder), "--trust_yaml"])
    assert code == 0, err
    assert marker.exists()
