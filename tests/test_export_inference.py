"""Export -> DeepSpeaker.from_hparams round trip, audio handling, scoring.

A narrow untrained model stands in for a trained one: nothing here trains,
downloads or needs a GPU.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.processing.features import InputNormalization
from speechbrain.utils.metric_stats import EER, minDCF

from deep_speaker_sb import embedding, scoring
from deep_speaker_sb import export as export_mod
from deep_speaker_sb.errors import ConfigError, DataError, MissingFileError
from deep_speaker_sb.export import export_pretrained, latest_export
from deep_speaker_sb.features import Features
from deep_speaker_sb.inference import DeepSpeaker
from deep_speaker_sb.lobes.rescnn import ResCNN
from deep_speaker_sb.onnx_export import ONNX_FILE
from tests.conftest import harmonics

SR = 8000


def _narrow_parts(seed: int = 0):
    torch.manual_seed(seed)
    feats = Features(kind="fbank", sample_rate=SR, n_mels=32)
    norm = InputNormalization(norm_type="sentence", std_norm=True)
    model = ResCNN(n_mels=32, channels=(8, 16), emb_dim=24, blocks_per_stage=1)
    # Non-trivial batch-norm statistics, so that the export must carry them.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return feats.eval(), norm.eval(), model.eval()


def _band_limited_speech(sr: int, seconds: float, seed: int) -> np.ndarray:
    """:func:`harmonics` (< 3.4 kHz, defined in continuous time, so the
    same at any ``sr``) under an envelope that never reaches zero."""
    rng = np.random.default_rng(seed)
    t, sig = harmonics(rng, seconds, sr)
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(2, 5) * t)
    return (0.3 * sig * envelope / np.abs(sig).max()).astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    feats, norm, model = _narrow_parts()
    folder = tmp_path_factory.mktemp("exp") / "pretrained"
    export_pretrained(
        folder,
        compute_features=feats,
        mean_var_norm=norm,
        embedding_model=model,
        threshold=0.3,
        card={"data": "unit test", "epochs": 0, "valid_eer": 0.5},
    )
    return folder, (feats, norm, model)


@pytest.fixture(scope="module")
def loaded(exported):
    folder, _ = exported
    return DeepSpeaker.from_hparams(source=folder, run_opts={"device": "cpu"})


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    d = tmp_path_factory.mktemp("wavs")
    out = {}
    for i, secs in enumerate((1.5, 2.0, 3.2)):
        x = _band_limited_speech(SR, secs, seed=i)
        sf.write(d / f"u{i}.wav", x, SR, subtype="PCM_16")
        out[f"u{i}"] = d / f"u{i}.wav"
    x16 = _band_limited_speech(16000, 2.0, seed=0)
    stereo = np.stack([1.2 * x16, 0.8 * x16], axis=1)  # mean = x16
    sf.write(d / "stereo16k.wav", stereo, 16000, subtype="PCM_16")
    sf.write(
        d / "mono8k.wav", _band_limited_speech(SR, 2.0, 0), SR, subtype="PCM_16"
    )
    out["stereo16k"] = d / "stereo16k.wav"
    out["mono8k"] = d / "mono8k.wav"
    (d / "broken.wav").write_bytes(b"RIFF....WAVEjunk")
    out["broken"] = d / "broken.wav"
    return out


def test_export_folder_is_complete_and_loadable(exported):
    folder, (feats, norm, model) = exported
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        # the ONNX graph too (no int8 copy: no calibration audio given)
        [*export_mod.REQUIRED_FILES, export_mod.CONFIG_FILE, ONNX_FILE]
    )
    leftovers = [p.name for p in folder.parent.iterdir() if p != folder]
    assert leftovers == []
    hp = load_hyperpyyaml((folder / "hyperparams.yaml").read_text())
    assert hp["embedding_model"].config == model.config
    assert hp["compute_features"].config == feats.config
    assert hp["mean_var_norm"].norm_type == "sentence"
    assert hp["audio_normalizer"].sample_rate == SR
    assert set(hp["modules"]) == set(DeepSpeaker.MODULES_NEEDED)
    assert Path(hp["pretrainer"].paths["embedding_model"]).parent == folder
    assert export_mod.read_threshold(folder) == 0.3
    # the threshold is stored once, in threshold.json only
    assert "0.3" not in (folder / "hyperparams.yaml").read_text()
    card = (folder / "model_card.md").read_text()
    for fact in ("unit test", "50.00%", "0.3000", "parameters", "fbank"):
        assert fact in card


def test_loaded_model_matches_in_memory_model(exported, loaded, monkeypatch):
    folder, (feats, norm, model) = exported
    assert loaded.threshold == 0.3 and loaded.sample_rate == SR
    wavs = torch.stack(
        [torch.from_numpy(_band_limited_speech(SR, 1.0, s)) for s in (3, 4)]
    )
    lens = torch.tensor([1.0, 0.7])
    mods = dict(
        compute_features=feats, mean_var_norm=norm, embedding_model=model
    )
    with torch.no_grad():
        want = embedding.compute_embeddings(mods, wavs, lens)
    got = loaded.encode_batch(wavs, lens)
    assert got.shape == (2, 24)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_moved_folder_loads_without_network(exported, tmp_path, monkeypatch):
    """Loading a local export reaches no network, with ``HF_HUB_OFFLINE``
    unset and the hub pointed at an unreachable address."""
    import socket

    import huggingface_hub
    from speechbrain.utils import fetching

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    fetched = []

    def refuse(name):
        def no_network(*args, **kwargs):
            fetched.append(name)
            raise OSError(f"{name}: no network in this test")

        return no_network

    for owner, name in (
        (huggingface_hub, "hf_hub_download"),
        (huggingface_hub, "snapshot_download"),
        (fetching, "download_file"),
        (fetching, "download_file_hf"),
        (socket.socket, "connect"),
        (socket, "create_connection"),
    ):
        monkeypatch.setattr(owner, name, refuse(name))

    folder, (feats, norm, model) = exported
    moved = tmp_path / "elsewhere" / "model"
    shutil.copytree(folder, moved)
    shutil.move(str(folder), str(folder) + ".hidden")  # old path now absent
    try:
        ds = DeepSpeaker.from_hparams(
            source=moved, savedir=tmp_path / "cache", run_opts={"device": "cpu"}
        )
    finally:
        shutil.move(str(folder) + ".hidden", str(folder))
    x = torch.from_numpy(_band_limited_speech(SR, 1.0, 9))[None]
    with torch.no_grad():
        want = model(norm(feats(x), torch.ones(1)), torch.ones(1))
    torch.testing.assert_close(ds.encode_batch(x), want, atol=1e-5, rtol=1e-5)
    assert fetched == []
    # The guard does catch a fetch from the hub.
    with pytest.raises(OSError, match="no network"):
        fetching.fetch("x.yaml", source="someone/model", savedir=tmp_path)
    assert fetched == ["download_file_hf"]


def test_encode_batch_is_the_embedding_path(loaded, monkeypatch):
    from deep_speaker_sb import embedding, inference

    calls = []

    def spy(modules, wavs, lens):
        calls.append((wavs.shape, lens.tolist()))
        return embedding.compute_embeddings(modules, wavs, lens)

    monkeypatch.setattr(inference, "compute_embeddings", spy)
    wavs = torch.from_numpy(_band_limited_speech(SR, 1.0, 5))[None]
    loaded.encode_batch(wavs, torch.tensor([0.5]))
    assert calls == [((1, SR), [0.5])]


def test_same_file_scores_one(loaded, wavs):
    score, same = loaded.verify_files(wavs["u1"], wavs["u1"])
    assert math.isclose(score, 1.0, abs_tol=1e-5) and same


def test_resampling_and_downmix(loaded, wavs):
    assert loaded.load_audio(wavs["stereo16k"]).dim() == 1
    a = loaded.encode_file(wavs["stereo16k"])
    b = loaded.encode_file(wavs["mono8k"])
    other = loaded.encode_file(wavs["u2"])
    sim = float(loaded.similarity(a, b))
    assert sim > 0.99, sim
    assert sim > float(loaded.similarity(b, other))


def test_batched_files_match_single_files(loaded, wavs):
    paths = [wavs["u2"], wavs["u0"], wavs["u1"]]  # unsorted lengths
    batched = loaded.encode_files(paths, batch_size=3)
    single = torch.stack([loaded.encode_file(p) for p in paths])
    assert batched.shape == (3, 24)
    cos = torch.nn.functional.cosine_similarity(batched, single, dim=1)
    assert bool((cos > 0.999).all()), cos


def test_a_longer_batch_neighbour_does_not_change_an_embedding(
    loaded, tmp_path
):
    """File A alone and A batched beside B, twice as long (A padded): the
    same embedding within float rounding.  (Counting a padded frame in
    the normalization, or dropping A's last frame in the pooling, moved
    elements by up to 0.012.)"""
    a, b = tmp_path / "a.wav", tmp_path / "b.wav"
    sf.write(a, _band_limited_speech(SR, 1.0, seed=7), SR, subtype="PCM_16")
    sf.write(b, _band_limited_speech(SR, 2.0, seed=8), SR, subtype="PCM_16")
    alone = loaded.encode_files([a])[0]
    batched = loaded.encode_files([b, a], batch_size=2)[1]
    assert float((alone - batched).abs().max()) < 1e-4


@pytest.mark.parametrize("pooling", ["mean", "stats", "attentive_stats"])
def test_padding_never_changes_compute_embeddings(pooling):
    """Each utterance alone and padded beside a longer one, at lengths
    where relative length x frames rounds either way, with non-zero junk
    in the padding: equal embeddings."""
    feats, norm, _ = _narrow_parts()
    model = ResCNN(
        n_mels=32,
        channels=(8, 16),
        emb_dim=24,
        blocks_per_stage=1,
        pooling=pooling,
    ).eval()
    mods = dict(
        compute_features=feats, mean_var_norm=norm, embedding_model=model
    )
    gen = torch.Generator().manual_seed(0)
    for n_a, n_b in (
        (8000, 16000),
        (9999, 12998),
        (7913, 10286),
        (8080, 21816),
        (12345, 24690),
    ):
        wavs = torch.randn(2, n_b, generator=gen) * 0.1
        wavs[0, n_a:] = 0.5  # the padding's content must not matter
        lens = torch.tensor([n_a / n_b, 1.0])
        with torch.no_grad():
            alone = embedding.compute_embeddings(
                mods, wavs[:1, :n_a], torch.ones(1)
            )[0]
            batched = embedding.compute_embeddings(mods, wavs, lens)[0]
        diff = float((alone - batched).abs().max())
        assert diff < 1e-5, (n_a, n_b, diff)


def test_reexport_replaces_and_failed_export_keeps_old(
    exported, tmp_path, monkeypatch
):
    _, (feats, norm, model) = exported
    folder = tmp_path / "runs" / "7" / "pretrained"
    kw = dict(compute_features=feats, mean_var_norm=norm, card={})
    export_pretrained(folder, embedding_model=model, threshold=0.1, **kw)
    export_pretrained(folder, embedding_model=model, threshold=0.2, **kw)
    assert export_mod.read_threshold(folder) == 0.2

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export_mod, "_save_norm", boom)
    with pytest.raises(KeyboardInterrupt):
        export_pretrained(folder, embedding_model=model, threshold=0.9, **kw)
    assert export_mod.read_threshold(folder) == 0.2
    assert [p.name for p in folder.parent.iterdir()] == ["pretrained"]
    assert latest_export(tmp_path / "runs") == folder


def test_incomplete_folder_and_bad_audio(exported, loaded, wavs, tmp_path):
    folder, _ = exported
    broken = tmp_path / "pretrained"
    shutil.copytree(folder, broken)
    (broken / "mean_var_norm.ckpt").unlink()
    with pytest.raises(FileNotFoundError, match="mean_var_norm.ckpt.*train"):
        DeepSpeaker.from_hparams(source=broken)
    with pytest.raises(FileNotFoundError, match="not found"):
        DeepSpeaker.from_hparams(source=tmp_path / "nope")
    with pytest.raises(DataError, match="cannot read audio"):
        loaded.encode_file(wavs["broken"])
    with pytest.raises(MissingFileError, match="audio file not found"):
        loaded.encode_files([tmp_path / "nope.wav"])
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, "float32"), SR)
    with pytest.raises(DataError, match="no samples"):
        loaded.encode_file(empty)
    with pytest.raises(ConfigError, match="batch_size"):
        loaded.encode_files([wavs["u0"]], batch_size=0)


def test_non_finite_audio_and_threshold_are_refused(
    exported, loaded, wavs, tmp_path
):
    # a float WAV holding NaN or Inf gave an all-NaN embedding before
    for bad in (np.nan, np.inf):
        x = _band_limited_speech(SR, 1.0, seed=3)
        x[100] = bad
        path = tmp_path / f"bad_{bad}.wav"
        sf.write(path, x, SR, subtype="FLOAT")
        with pytest.raises(DataError, match=f"{path.name}.*NaN or infinite"):
            loaded.encode_file(path)
    x = torch.from_numpy(_band_limited_speech(SR, 1.0, seed=3))
    x[5] = float("nan")
    with pytest.raises(DataError, match="NaN or infinite"):
        loaded.encode_batch(x)
    # threshold.json holding NaN (or a value no cosine can reach)
    folder, _ = exported
    for value in ("NaN", "2.5"):
        copy = tmp_path / f"threshold_{value}"
        shutil.copytree(folder, copy)
        (copy / "threshold.json").write_text(f'{{"threshold": {value}}}')
        with pytest.raises(DataError, match="threshold must be a cosine"):
            export_mod.read_threshold(copy)


def test_encode_batch_checks_its_input(loaded):
    x = _band_limited_speech(SR, 1.0, seed=4)
    want = loaded.encode_batch(torch.from_numpy(x))
    # integer PCM is divided by its full scale (it was taken as is before)
    pcm = torch.from_numpy(np.round(x * 32768).astype(np.int16))
    assert torch.allclose(loaded.encode_batch(pcm), want, atol=1e-3)
    # a numpy array and a [B, 1, T] mono channel axis are accepted
    assert torch.allclose(loaded.encode_batch(x), want, atol=1e-6)
    three_d = torch.from_numpy(x)[None, None]
    assert torch.allclose(loaded.encode_batch(three_d), want, atol=1e-6)
    bad_inputs = [
        (torch.zeros(1, 0), None, "empty"),
        (torch.zeros(0, 800), None, "empty"),
        (torch.rand(2, 2, 800), None, "mono"),
        (torch.rand(2, 800), torch.tensor([1.0, 0.0]), r"\(0, 1\]"),
        (torch.rand(2, 800), torch.tensor([1.0, -0.5]), r"\(0, 1\]"),
        (torch.rand(2, 800), torch.tensor([1.0, float("nan")]), r"\(0, 1\]"),
        (torch.rand(2, 800), torch.tensor([1.0]), "2 waveforms"),
        (torch.zeros(1, 800, dtype=torch.bool), None, "float"),
    ]
    for wavs, lens, match in bad_inputs:
        with pytest.raises(DataError, match=match):
            loaded.encode_batch(wavs, lens)


def test_load_without_yaml_runs_no_code(exported, wavs, tmp_path):
    from deep_speaker_sb.inference import load_without_yaml

    folder, (feats, norm, model) = exported
    copy = tmp_path / "pretrained"
    shutil.copytree(folder, copy)
    marker = tmp_path / "code_ran"
    # what a hostile export could hold: from_hparams would run it
    (copy / "hyperparams.yaml").write_text(
        f"x: !apply:pathlib.Path.touch [{str(marker)!r}]\n"
    )
    plain = load_without_yaml(copy)
    assert not marker.exists()
    assert plain.threshold == pytest.approx(0.3)
    x = torch.from_numpy(_band_limited_speech(SR, 1.5, seed=7))[None]
    with torch.no_grad():
        want = model(norm(feats(x), torch.ones(1)), torch.ones(1))
    assert torch.allclose(plain.encode_batch(x), want, atol=1e-5)
    assert torch.allclose(
        plain.encode_file(wavs["u0"]),
        plain.encode_batch(torch.from_numpy(sf.read(wavs["u0"])[0]).float())[0],
        atol=1e-5,
    )
    (copy / "embedding_model.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="cannot load"):
        load_without_yaml(copy)
    (copy / "config.json").unlink()
    with pytest.raises(MissingFileError, match="config.json"):
        load_without_yaml(copy)


def test_from_config_is_the_same_model_as_from_hparams(
    exported, loaded, wavs, tmp_path
):
    """The command-line tools' loader (config.json, no YAML) gives the
    model from_hparams gives: same embeddings, threshold, sample rate and
    identity (so registers made either way stay valid)."""
    folder, _ = exported
    copy = tmp_path / "pretrained"
    shutil.copytree(folder, copy)
    marker = tmp_path / "code_ran"
    (copy / "hyperparams.yaml").write_text(
        f"x: !apply:pathlib.Path.touch [{str(marker)!r}]\n"
    )
    model = DeepSpeaker.from_config(copy, run_opts={"device": "cpu"})
    assert not marker.exists()
    assert model.threshold == loaded.threshold
    assert model.sample_rate == loaded.sample_rate
    assert model.emb_dim == loaded.emb_dim
    assert model.model_id == loaded.model_id
    files = [wavs["u0"], wavs["u1"]]
    assert torch.allclose(
        model.encode_files(files), loaded.encode_files(files), atol=1e-6
    )
    (copy / "config.json").unlink()
    with pytest.raises(MissingFileError, match="config.json"):
        DeepSpeaker.from_config(copy)


# ------------------------------------------------------------- scoring


def test_eer_and_min_dcf_by_hand():
    # Accept when score > t.  At t = 0.5: 1 of 4 targets missed (0.45),
    # 1 of 4 non-targets accepted (0.6): FRR = FAR = 0.25.
    pos = torch.tensor([0.9, 0.8, 0.7, 0.45])
    neg = torch.tensor([0.6, 0.4, 0.2, 0.1])
    m = scoring.verification_metrics([1] * 4 + [0] * 4, torch.cat([pos, neg]))
    assert m["eer"] == pytest.approx(0.25)
    assert m["n_target"] == 4 and m["n_nontarget"] == 4
    # p_target 0.01: rejecting everything above 0.6 costs 0.01 * 1/4 (miss
    # 0.45) and nothing else; accepting nothing costs 0.01 -> min 0.0025,
    # normalized by the cost of rejecting every trial (0.01): 0.25.
    assert m["min_dcf_0.01"] == pytest.approx(0.0025 / 0.01)
    # p_target 0.05: same point, 0.05 * 1/4, normalized by 0.05.
    assert m["min_dcf_0.05"] == pytest.approx(0.0125 / 0.05)


def test_fast_metrics_equal_speechbrain(monkeypatch):
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(300, generator=g) + 1.5
    neg = torch.randn(500, generator=g)
    pos[:20] = neg[:20]  # ties across classes
    want_eer = EER(pos, neg)
    want_dcf = minDCF(pos, neg, p_target=0.05)
    monkeypatch.setattr(scoring, "SPEECHBRAIN_METRICS_LIMIT", 0)
    assert scoring.compute_eer(pos, neg) == pytest.approx(want_eer)
    got = scoring.compute_min_dcf(pos, neg, p_target=0.05, normalize=False)
    assert got == pytest.approx(want_dcf)
    normalized, thr = scoring.compute_min_dcf(pos, neg, p_target=0.05)
    assert normalized == pytest.approx(want_dcf[0] / 0.05)
    assert thr == pytest.approx(want_dcf[1])


def test_snorm_by_hand():
    emb = {"e": torch.tensor([1.0, 0.0]), "t": torch.tensor([0.6, 0.8])}
    cohort = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    got = scoring.snorm_scores([(1, "e", "t")], emb, cohort)
    raw = 0.6
    ce = torch.tensor([1.0, 0.0, -1.0])
    ct = torch.tensor([0.6, 0.8, -0.6])
    want = 0.5 * ((raw - ce.mean()) / ce.std() + (raw - ct.mean()) / ct.std())
    assert float(got[0]) == pytest.approx(float(want), abs=1e-6)
    top = scoring.snorm_scores([(1, "e", "t")], emb, cohort, top_n=2)
    ce2, ct2 = torch.tensor([1.0, 0.0]), torch.tensor([0.8, 0.6])
    want2 = 0.5 * (
        (raw - ce2.mean()) / ce2.std() + (raw - ct2.mean()) / ct2.std()
    )
    assert float(top[0]) == pytest.approx(float(want2), abs=1e-6)


def test_san_sap_pairs_by_hand():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    b = torch.tensor([[-1.0, 0.0], [0.0, 2.0]])
    sap = scoring.pair_scores(a)  # 3 distinct pairs
    assert sap.tolist() == pytest.approx([0.0, 2**-0.5, 2**-0.5])
    san = scoring.pair_scores(a, b)  # 3 x 2 pairs
    assert san.tolist() == pytest.approx(
        [-1.0, 0.0, 0.0, 1.0, -(2**-0.5), 2**-0.5]
    )
    with pytest.raises(ValueError):
        scoring.pair_scores(a[:1])


def test_trial_scoring_paths_agree(monkeypatch):
    g = torch.Generator().manual_seed(1)
    emb = {f"u{i}": torch.randn(16, generator=g) for i in range(30)}
    ids = sorted(emb)
    trials = [(i % 2, ids[i % 30], ids[(7 * i) % 30]) for i in range(200)]
    want = torch.stack(
        [scoring.cosine_similarity(emb[a], emb[b]) for _, a, b in trials]
    )
    torch.testing.assert_close(scoring.score_trials(trials, emb), want)
    monkeypatch.setattr(scoring, "PAIR_MATRIX_LIMIT", 0)
    got = scoring.score_trials(trials, emb, batch_size=7)
    torch.testing.assert_close(got, want)


def test_one_cosine():
    a = torch.tensor([[3.0, 0.0], [1.0, 1.0], [0.0, -2.0]])
    b = torch.tensor([[0.0, 5.0], [-1.0, 0.0]])
    r = 2**-0.5
    want = torch.tensor([[0.0, -1.0], [r, -r], [-1.0, 0.0]])
    torch.testing.assert_close(scoring.cosine_matrix(a, b), want)
    torch.testing.assert_close(
        scoring.cosine_matrix(a), scoring.cosine_matrix(a, a)
    )
    # Row-wise and broadcasting, and the matrix's diagonal.
    torch.testing.assert_close(
        scoring.cosine_similarity(a[:2], b), torch.tensor([0.0, -r])
    )
    torch.testing.assert_close(scoring.cosine_similarity(a, b[:1]), want[:, 0])
    assert DeepSpeaker.similarity is scoring.cosine_similarity
    # float32 out of other dtypes
    half = scoring.cosine_similarity(a.half(), a.double())
    assert half.dtype == torch.float32
    torch.testing.assert_close(half, torch.ones(3))


def test_trial_and_user_errors(tmp_path):
    from deep_speaker_sb.data import trials as trials_mod

    assert scoring.Trial is trials_mod.Trial
    with pytest.raises(MissingFileError):
        scoring.read_trials(tmp_path / "nope.txt")
    bad = tmp_path / "trials.txt"
    bad.write_text("2 a b\n")
    with pytest.raises(DataError, match="label 0 or 1"):
        scoring.read_trials(bad)
    with pytest.raises(DataError, match="non-target"):
        scoring.verification_metrics([1, 1], torch.tensor([0.1, 0.2]))
    # a programming error, not the user's
    with pytest.raises(ValueError, match="differ in length") as info:
        scoring.verification_metrics([1, 0], torch.tensor([0.1]))
    assert not isinstance(info.value, DataError)
