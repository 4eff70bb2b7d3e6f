"""The ECAPA-TDNN peer (issue #18): the lobe and its softmax stage.

A tiny ECAPA-TDNN takes the ResCNN's place in ``hparams/softmax.yaml``
(``bench/accuracy.py``'s swap), trains on the shared tiny corpus with the
AAM loss, and its best checkpoint embeds and scores the test trials the
way ``verify.py`` does.  A tiny ECAPA-TDNN exports like the ResCNN:
the folder loads back (``config.json`` names its class) and its ONNX
graphs (fp32, int8) run in the torch-free runtime at any batch and length.
"""

from __future__ import annotations

import json
import math
import re
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from hyperpyyaml import load_hyperpyyaml

from deep_speaker_sb.dataio import read_manifest, utterances
from deep_speaker_sb.embedding import EMBEDDING_MODULES, compute_embeddings
from deep_speaker_sb.errors import ConfigError, DataError
from deep_speaker_sb.export import export_pretrained
from deep_speaker_sb.inference import DeepSpeaker
from deep_speaker_sb.lobes.ecapa import SMALL_CHANNELS, EcapaTDNN
from deep_speaker_sb.lobes.rescnn import ResCNN
from deep_speaker_sb.runtime import OnnxSpeaker
from tests.conftest import (
    SR,
    load_script,
    narrow_parts,
    run_script,
    speech_like,
)

bench = load_script("bench/accuracy.py")

#: A tiny ECAPA-TDNN (three blocks, a few channels).
TINY = {
    "kernel_sizes": [5, 3, 1],
    "dilations": [1, 2, 1],
    "attention_channels": 8,
    "res2net_scale": 4,
    "se_channels": 8,
}


def test_lobe_contract_and_cpu_budget_size():
    model = EcapaTDNN(n_mels=20, emb_dim=12, channels=(16, 16, 48), **TINY)
    x = torch.randn(3, 60, 20)
    emb = model(x, torch.tensor([1.0, 0.7, 0.4]))
    assert emb.shape == (3, 12)
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(3))
    assert model(x).shape == (3, 12)  # lengths optional
    # the bench's peer is about as large as the CPU-budget ResCNN
    small = EcapaTDNN(n_mels=40, emb_dim=128, channels=SMALL_CHANNELS)
    rescnn = ResCNN(
        n_mels=40, channels=(16, 32, 64, 128), emb_dim=128, blocks_per_stage=1
    )
    n_small, n_rescnn = (
        bench.n_parameters(m) for m in (small, rescnn)
    )  # 688,752 and 711,600
    assert abs(n_small - n_rescnn) < 0.05 * n_rescnn


def _epoch_losses(train_log) -> list[float]:
    return [
        float(re.search(r"train loss: ([\d.e+-]+)", line).group(1))
        for line in train_log.read_text().splitlines()
    ]


def test_tiny_ecapa_trains_embeds_and_scores(tiny_prepared, tmp_path):
    block = bench.ecapa_block((16, 16, 48), **TINY)
    yaml_path = bench.ecapa_yaml(tmp_path, block)
    out = tmp_path / "softmax"
    proc = run_script(
        "train_softmax.py",
        yaml_path,
        "--data_folder", tiny_prepared,
        "--prep_folder", tiny_prepared,
        "--skip_prep", "True",
        "--output_folder", out,
        "--n_mels", "24",
        "--emb_dim", "16",
        "--pretrain_loss", "aam",
        "--augment", "False",
        "--number_of_epochs", "2",
        "--batch_size", "8",
        "--lr", "0.003",
        "--lr_final", "0.003",
        "--num_workers", "0",
        "--device", "cpu",
        "--noprogressbar",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    losses = _epoch_losses(out / "train_log.txt")
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert losses[1] < losses[0]
    # the run's own copy of its hyperparameters holds the ECAPA-TDNN
    with open(out / "hyperparams.yaml", encoding="utf-8") as f:
        saved = load_hyperpyyaml(f)
    assert isinstance(saved["embedding_model"], EcapaTDNN)
    assert saved["embedding_model"].config["channels"] == [16, 16, 48]

    model = bench.checkpoint_model(out)
    utts = sorted(
        utterances(read_manifest(tiny_prepared / "test.csv")).values(),
        key=lambda u: u.utt_id,
    )[:5]
    embs = model.encode_files([u.wav for u in utts])
    assert embs.shape == (5, 16)
    torch.testing.assert_close(embs.norm(dim=1), torch.ones(5))
    assert not torch.allclose(embs[0], embs[1])

    trials, scores = bench.score_model(
        model, tiny_prepared, tmp_path / "verify", bench.Scoring()
    )
    assert len(trials) == len(scores) > 0
    assert (tmp_path / "verify" / "scores.txt").is_file()
    assert (tmp_path / "verify" / "report.json").is_file()

    # the peer's export (for inference_throughput.py --export) embeds as
    # the checkpoint does, its threshold the EER threshold of its scores
    from deep_speaker_sb.inference import load_without_yaml

    folder = bench.export_peer(
        model, tmp_path / "pretrained", trials, scores, tiny_prepared
    )
    labels = [label for label, _, _ in trials]
    threshold = json.loads((folder / "threshold.json").read_text())
    eer_thr = bench.verification_metrics(labels, scores)["eer_threshold"]
    assert threshold["threshold"] == pytest.approx(eer_thr)
    loaded = load_without_yaml(folder)
    torch.testing.assert_close(
        loaded.encode_files([u.wav for u in utts]), embs, atol=1e-5, rtol=0
    )


# ------------------------------------------------ export, ONNX, runtime


def _tiny_ecapa(n_mels: int) -> EcapaTDNN:
    """The tiny ECAPA-TDNN of the export tests, with random batch-norm
    statistics (which the export must carry), in eval mode."""
    torch.manual_seed(0)
    model = EcapaTDNN(
        n_mels=n_mels,
        emb_dim=24,
        channels=(8, 8, 24),
        kernel_sizes=(5, 3, 1),
        dilations=(1, 2, 1),
        attention_channels=4,
        res2net_scale=4,
        se_channels=4,
    )
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="module")
def ecapa_export(tmp_path_factory):
    """A tiny ECAPA-TDNN export with its fp32 and int8 graphs, and its
    in-memory parts."""
    feats, norm, _ = narrow_parts("fbank")
    model = _tiny_ecapa(feats.n_features)
    folder = tmp_path_factory.mktemp("ecapa") / "pretrained"
    export_pretrained(
        folder,
        compute_features=feats,
        mean_var_norm=norm,
        embedding_model=model,
        threshold=0.4,
        card={"data": "unit test"},
        calibration=[torch.from_numpy(speech_like(2.0, s)) for s in range(4)],
    )
    return folder, dict(
        zip(EMBEDDING_MODULES, (feats, norm, model), strict=True)
    )


def _padded(seconds: list[float], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`speech_like` waveforms zero-padded into one batch (with 0.1 s
    more padding than the longest), and their relative lengths."""
    waves = [speech_like(s, seed + i) for i, s in enumerate(seconds)]
    longest = max(len(w) for w in waves) + SR // 10
    wavs = np.zeros((len(waves), longest), np.float32)
    for i, w in enumerate(waves):
        wavs[i, : len(w)] = w
    return wavs, np.array([len(w) / longest for w in waves], np.float32)


def _cosines(a, b) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (
        (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    )


def test_forward_is_speechbrains_on_padded_batches():
    """The lobe's own forward (a mask the ONNX tracer keeps dynamic) gives
    SpeechBrain's ECAPA_TDNN numbers on the same weights."""
    model = _tiny_ecapa(20)
    x = torch.randn(3, 57, 20)
    with torch.no_grad():
        for lens in (torch.tensor([1.0, 0.73, 0.41]), None):
            ref = model.ecapa(x, lens).squeeze(1)
            ref = torch.nn.functional.normalize(ref, dim=-1)
            assert (model(x, lens) - ref).abs().max() < 1e-5


def test_export_records_the_class_and_loads_back(ecapa_export):
    folder, mods = ecapa_export
    config = json.loads((folder / "config.json").read_text())
    assert config["model_class"] == "EcapaTDNN"
    assert config["model"] == mods["embedding_model"].config
    yaml = (folder / "hyperparams.yaml").read_text()
    assert "!new:deep_speaker_sb.lobes.ecapa.EcapaTDNN" in yaml
    assert "| EcapaTDNN | n_mels=32" in (folder / "model_card.md").read_text()
    wavs, lens = _padded([1.2, 2.0, 0.7], seed=20)
    wavs, lens = torch.from_numpy(wavs), torch.from_numpy(lens)
    with torch.no_grad():
        ref = compute_embeddings(mods, wavs, lens)
    for load in (DeepSpeaker.from_config, DeepSpeaker.from_hparams):
        model = load(folder, run_opts={"device": "cpu"})
        assert isinstance(model.mods["embedding_model"], EcapaTDNN)
        assert model.emb_dim == 24
        out = model.encode_batch(wavs, lens)
        assert (out - ref).abs().max() < 1e-6


def test_unknown_model_class_is_refused(ecapa_export, tmp_path):
    folder, _ = ecapa_export
    copy = tmp_path / "pretrained"
    shutil.copytree(folder, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(
        json.dumps({**config, "model_class": "os.system"})
    )
    with pytest.raises(DataError, match="unknown model_class 'os.system'"):
        DeepSpeaker.from_config(copy)
    with pytest.raises(ConfigError, match="cannot export a Linear"):
        export_pretrained(
            tmp_path / "linear",
            compute_features=narrow_parts("fbank")[0],
            mean_var_norm=narrow_parts("fbank")[1],
            embedding_model=torch.nn.Linear(2, 2),
            threshold=0.4,
            card={},
            onnx=False,
        )
    assert not (tmp_path / "linear").exists()


def test_onnx_graphs_match_torch_with_dynamic_batch_and_time(ecapa_export):
    """The fp32 graph equals torch on batches of 1 and 3 of other lengths
    than the traced example (batch 2, 2 s); the int8 one is close."""
    folder, mods = ecapa_export
    fp32 = OnnxSpeaker(folder, threads=1)
    int8 = OnnxSpeaker(folder, precision="int8", threads=1)
    for seconds, seed in (([1.3], 1), ([2.6, 0.9, 1.7], 2)):
        wavs, lens = _padded(seconds, seed)
        with torch.no_grad():
            ref = compute_embeddings(
                mods, torch.from_numpy(wavs), torch.from_numpy(lens)
            ).numpy()
        out = fp32.embed_waveforms(wavs, lens)
        assert out.shape == (len(seconds), 24)
        assert _cosines(out, ref).min() >= 0.9999
        assert np.abs(out - ref).max() < 1e-4
        # int8 weights and activations: close, not equal (a loose bound)
        assert _cosines(int8.embed_waveforms(wavs, lens), ref).min() > 0.97
    path = folder / "speech.wav"
    sf.write(path, speech_like(2.5, 3), SR)
    embs = {
        backend: DeepSpeaker.from_config(folder, backend=backend).encode_file(
            path
        )
        for backend in ("torch", "onnx", "onnx-int8")
    }
    assert float(embs["onnx"] @ embs["torch"]) >= 0.9999
    assert float(embs["onnx-int8"] @ embs["torch"]) > 0.97
