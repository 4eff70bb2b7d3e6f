"""Adaptive s-norm (AS-norm) and test-time crops (issue #18).

AS-norm is :func:`deep_speaker_sb.scoring.snorm_scores` with ``top_n``
(``verify.py --snorm --snorm_top N``); crops are
:class:`deep_speaker_sb.inference.Crops` (``verify.py --crops N
--crop_len S``).  A narrow untrained export stands in for a trained model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from speechbrain.processing.features import InputNormalization

from deep_speaker_sb import scoring
from deep_speaker_sb.errors import ConfigError
from deep_speaker_sb.export import export_pretrained
from deep_speaker_sb.features import Features
from deep_speaker_sb.inference import Crops, DeepSpeaker, PlainDeepSpeaker
from deep_speaker_sb.lobes.rescnn import ResCNN
from tests.conftest import harmonics, run_in_process

SR = 8000


def _random_setup(seed: int = 0, n_cohort: int = 12):
    g = torch.Generator().manual_seed(seed)
    emb = {f"u{i}": torch.randn(8, generator=g) for i in range(6)}
    ids = sorted(emb)
    trials = [
        (int(i % 2 == 0), ids[i % 6], ids[(i * 5 + 1) % 6]) for i in range(10)
    ]
    return trials, emb, torch.randn(n_cohort, 8, generator=g)


# --------------------------------------------------------------- AS-norm


def test_asnorm_with_the_whole_cohort_is_snorm():
    trials, emb, cohort = _random_setup()
    plain = scoring.snorm_scores(trials, emb, cohort)
    for k in (len(cohort), len(cohort) + 5):
        got = scoring.snorm_scores(trials, emb, cohort, top_n=k)
        torch.testing.assert_close(got, plain)
    # a smaller k is another normalization
    top = scoring.snorm_scores(trials, emb, cohort, top_n=3)
    assert not torch.allclose(top, plain)


def test_asnorm_shapes_and_values_by_hand():
    trials, emb, cohort = _random_setup(seed=1)
    k = 4
    got = scoring.snorm_scores(trials, emb, cohort, top_n=k)
    assert got.shape == (len(trials),) and torch.isfinite(got).all()
    # each side's mean / std over its own k highest cohort cosines
    for (_, e, t), score in zip(trials, got, strict=True):
        raw = scoring.cosine_similarity(emb[e], emb[t])
        ce = scoring.cosine_matrix(emb[e][None], cohort)[0].topk(k).values
        ct = scoring.cosine_matrix(emb[t][None], cohort)[0].topk(k).values
        want = 0.5 * (
            (raw - ce.mean()) / ce.std() + (raw - ct.mean()) / ct.std()
        )
        assert float(score) == pytest.approx(float(want), abs=1e-5)


def test_asnorm_is_monotonic_when_the_cohort_statistics_are_equal():
    # Every trial embedding is (cos a, sin a, 1, 0) / sqrt(2) and the
    # cohort lies in the last two axes, so every trial utterance has the
    # same cohort cosines (0.71, 0, -0.71, 0.42) whatever its angle a:
    # the same top-k mean and std on both sides of every trial, and
    # AS-norm is one increasing affine map of the raw cosine.
    angles = torch.linspace(0, 3.0, 6)
    emb = {
        f"u{i}": torch.tensor(
            [float(torch.cos(a)), float(torch.sin(a)), 1.0, 0.0]
        )
        for i, a in enumerate(angles)
    }
    cohort = torch.tensor(
        [
            [0.0, 0.0, 1.0, 0.0],
            [0.0, 0.0, 0.0, 1.0],
            [0.0, 0.0, -1.0, 0.0],
            [0.0, 0.0, 0.6, 0.8],
        ]
    )
    ids = sorted(emb)
    trials = [(i % 2, ids[i], ids[j]) for i in range(6) for j in range(6)]
    raw = scoring.score_trials(trials, emb)
    assert len(set(raw.round(decimals=4).tolist())) > 3
    for k in (2, 3, 4):
        normed = scoring.snorm_scores(trials, emb, cohort, top_n=k)
        top = (torch.tensor([1.0, 0.0, -1.0, 0.6]) / 2**0.5).topk(k).values
        want = (raw - top.mean()) / top.std()
        torch.testing.assert_close(normed, want, atol=1e-5, rtol=0)
        order = torch.argsort(raw)
        assert (normed[order].diff() >= -1e-6).all()


# ----------------------------------------------------------------- crops


def _slowly_changing_speech(seconds: float, seed: int) -> np.ndarray:
    """:func:`harmonics` under a slowly changing envelope, so that crops
    of a file differ (unlike :func:`speech_like`'s syllable rate)."""
    rng = np.random.default_rng(seed)
    t, sig = harmonics(rng, seconds, SR)
    envelope = 0.5 + 0.45 * np.sin(2 * np.pi * 0.3 * t + rng.uniform(0, 3))
    return (0.3 * sig * envelope / np.abs(sig).max()).astype(np.float32)


@pytest.fixture(scope="module")
def narrow(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("crops")
    folder = export_pretrained(
        root / "pretrained",
        compute_features=Features(n_mels=24),
        mean_var_norm=InputNormalization(norm_type="sentence"),
        embedding_model=ResCNN(
            n_mels=24, channels=(4, 8), emb_dim=16, blocks_per_stage=1
        ),
        threshold=0.5,
        card={},
        onnx=False,
    )
    wavs = {}
    for name, seconds, seed in (("short", 1.5, 0), ("long", 7.0, 1)):
        wavs[name] = root / f"{name}.wav"
        sf.write(
            wavs[name], _slowly_changing_speech(seconds, seed), SR, "PCM_16"
        )
    return folder, wavs


def test_crop_positions():
    crops = Crops(4, 1.0)
    assert crops.starts(8000, SR) is None  # exactly one crop long: whole
    assert crops.starts(4 * 8000, SR) == [0, 8000, 16000, 24000]
    assert Crops(1, 1.0).starts(3 * 8000, SR) == [8000]  # the middle
    pieces = crops.split(torch.arange(20000.0), SR)
    assert [len(p) for p in pieces] == [8000] * 4
    assert pieces[0][0] == 0 and pieces[-1][-1] == 19999
    with pytest.raises(ConfigError, match="--crops"):
        Crops(0, 1.0)
    with pytest.raises(ConfigError, match="--crop_len"):
        Crops(2, 0.0)


def test_short_file_is_embedded_whole_and_long_files_as_crops(narrow):
    folder, wavs = narrow
    model = DeepSpeaker.from_hparams(source=folder, run_opts={"device": "cpu"})
    paths = [wavs["short"], wavs["long"]]
    # one waveform per batch: padded beside another, a file's features
    # move by a frame's worth (the sentence statistics), crops or not
    whole = model.encode_files(paths, batch_size=1)
    cropped = model.encode_files(paths, batch_size=1, crops=Crops(3, 2.0))
    assert cropped.shape == whole.shape == (2, 16)
    # the 1.5 s file is shorter than a 2 s crop: the same embedding
    assert torch.equal(cropped[0], whole[0])
    batched = model.encode_files(paths, crops=Crops(3, 2.0))
    torch.testing.assert_close(batched[1], cropped[1], atol=1e-5, rtol=0)
    # the 7 s file: the mean of 3 crops, unit norm, not the whole file
    assert float(cropped[1].norm()) == pytest.approx(1.0, abs=1e-5)
    assert not torch.allclose(cropped[1], whole[1], atol=1e-3)
    wav = model.load_audio(wavs["long"])
    by_hand = torch.nn.functional.normalize(
        model.encode_batch(torch.stack(Crops(3, 2.0).split(wav, SR))).sum(0),
        dim=0,
    )
    torch.testing.assert_close(cropped[1], by_hand, atol=1e-5, rtol=0)


def test_plain_model_embeds_files_the_same_way(narrow):
    folder, wavs = narrow
    full = DeepSpeaker.from_hparams(source=folder, run_opts={"device": "cpu"})
    plain = PlainDeepSpeaker(full.mods, SR, 0.5)
    paths = [wavs["short"], wavs["long"]]
    crops = Crops(2, 3.0)
    torch.testing.assert_close(
        plain.encode_files(paths, crops=crops),
        full.encode_files(paths, crops=crops),
    )
    plain.check_speech(wavs["long"])  # the default speech check


def test_verify_crops_and_asnorm_options(
    narrow, tiny_prepared, tmp_path, capsys
):
    folder, _ = narrow
    common = [
        "--model", str(folder),
        "--csv", str(tiny_prepared / "test.csv"),
        "--device", "cpu",
    ]  # fmt: skip
    out = tmp_path / "v"
    args = ["--crops", "2", "--crop_len", "1.0", "--snorm", "--snorm_top"]
    code, err = run_in_process(
        "verify.py",
        common + args + ["2", "--cohort_size", "4", "--out", str(out)],
    )
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["crops"] == {"n": 2, "seconds": 1.0}
    assert report["snorm"]["top_n"] == 2 and report["score"] == "s-norm"
    assert "adaptive: top 2 per side" in capsys.readouterr().out
    for bad, says in (
        (["--crops", "0"], "--crops must be at least 1"),
        (["--crops", "2", "--crop_len", "-1"], "--crop_len must be"),
        (["--snorm_top", "5"], "--snorm_top N goes with --snorm"),
        (["--snorm", "--snorm_top", "0"], "--snorm_top must be at least 1"),
        (["--crops", "2", "--spk", "X"], "trials mode only"),
    ):
        code, err = run_in_process("verify.py", common + bad)
        assert code == 1 and err.startswith("error: ") and says in err, err
        assert err.count("\n") == 1
