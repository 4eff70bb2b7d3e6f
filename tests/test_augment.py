"""Waveform augmentation: generated files, the YAML pipeline, training.

The noise, babble and RIR files are generated from the tiny shared corpus;
the pipeline is the ``wav_augment`` of the YAMLs, run on tiny batches.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import speechbrain as sb
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.augment.time_domain import AddNoise
from speechbrain.dataio.batch import PaddedBatch
from speechbrain.utils import seed_everything

from deep_speaker_sb.augment import (
    LEVEL,
    prepare_augmentation,
    prepare_from_hparams,
)
from deep_speaker_sb.brains.triplet import TripletBrain
from tests.conftest import ROOT, run_script

SR = 8000
#: Small sizes for the tests that call prepare_augmentation directly.
SMALL = {"n_noises": 2, "n_babble": 3, "n_rirs": 4, "noise_dur": 2.0}
#: A narrow model for the YAML-built Brains.
MODEL = {
    "channels": [4, 8],
    "blocks_per_stage": 1,
    "emb_dim": 16,
    "n_mels": 24,
}


def _mtimes(folder: Path) -> dict[str, int]:
    return {
        str(p.relative_to(folder)): p.stat().st_mtime_ns
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _load_yaml(name: str, prep: Path, augment_folder: Path) -> dict:
    overrides = {
        "prep_folder": str(prep),
        "augment_folder": str(augment_folder),
        "output_folder": str(augment_folder.parent / "out"),
        **MODEL,
    }
    if name == "softmax":
        overrides["data_folder"] = "unused"
    with open(ROOT / "hparams" / f"{name}.yaml", encoding="utf-8") as f:
        return load_hyperpyyaml(f, overrides)


@pytest.fixture(scope="module")
def triplet_hparams(tiny_prepared, tmp_path_factory) -> dict:
    """triplet.yaml (narrow model) with its augmentation files made."""
    folder = tmp_path_factory.mktemp("aug") / "augment"
    hparams = _load_yaml("triplet", tiny_prepared, folder)
    assert prepare_from_hparams(hparams) is not None
    return hparams


def test_files_written_once_then_reused(tiny_prepared, tmp_path):
    folder = tmp_path / "augment"
    files = prepare_augmentation(folder, tiny_prepared / "train.csv", **SMALL)
    rows = {
        csv: csv.read_text().splitlines()[1:]
        for csv in (files.noise_csv, files.babble_csv, files.rir_csv)
    }
    assert [len(r) for r in rows.values()] == [6, 3, 4]  # 3 colors x 2
    for lines in rows.values():
        for line in lines:
            wav = folder / line.split(",")[2].replace("$augment_folder/", "")
            info = sf.info(str(wav))
            assert info.samplerate == SR and info.channels == 1, wav
            assert float(line.split(",")[1]) == pytest.approx(
                info.frames / SR, abs=1e-3
            )
    for wav in (folder / "babble").glob("*.wav"):
        x, _ = sf.read(wav)
        assert np.sqrt(np.mean(x**2)) == pytest.approx(LEVEL, rel=0.01)
        assert len(x) == 10 * SR

    before = _mtimes(folder)
    assert len(before) == 6 + 3 + 4 + 3 + 1  # WAVs, CSVs, options.json
    again = prepare_augmentation(folder, tiny_prepared / "train.csv", **SMALL)
    assert again == files
    assert _mtimes(folder) == before  # nothing rewritten

    # Other options: written again, and the extra RIRs of before removed.
    prepare_augmentation(
        folder, tiny_prepared / "train.csv", **{**SMALL, "n_rirs": 2}
    )
    after = _mtimes(folder)
    assert sorted(p.name for p in (folder / "rirs").iterdir()) == [
        "rir_000.wav",
        "rir_001.wav",
    ]
    assert after["rirs.csv"] != before["rirs.csv"]


def test_interrupted_rewrite_is_redone(tiny_prepared, tmp_path, monkeypatch):
    """Options A done, B interrupted half-way, A again: rewritten, since
    the half-written files are not A's any more."""
    import deep_speaker_sb.augment as augment

    folder, csv = tmp_path / "augment", tiny_prepared / "train.csv"
    prepare_augmentation(folder, csv, seed=1, **SMALL)
    noise = (folder / "noise" / "white_00.wav").read_bytes()

    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(augment, "simulate_rir", fail)
        with pytest.raises(KeyboardInterrupt):
            prepare_augmentation(folder, csv, seed=2, **SMALL)
    assert (folder / "noise" / "white_00.wav").read_bytes() != noise
    assert not list(folder.rglob("*.tmp"))  # no partial file left
    prepare_augmentation(folder, csv, seed=1, **SMALL)
    assert (folder / "noise" / "white_00.wav").read_bytes() == noise
    assert (folder / "options.json").is_file()


def test_files_deterministic_under_seed(tiny_prepared, tmp_path):
    def wav_bytes(folder: Path, seed: int) -> dict[str, bytes]:
        prepare_augmentation(
            folder, tiny_prepared / "train.csv", seed=seed, **SMALL
        )
        return {
            str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*.wav"))
        }

    first = wav_bytes(tmp_path / "a", 5)
    assert wav_bytes(tmp_path / "b", 5) == first
    other = wav_bytes(tmp_path / "c", 6)
    assert other.keys() == first.keys()
    assert all(other[k] != first[k] for k in first)


@pytest.mark.parametrize("csv", ["noise.csv", "babble.csv"])
def test_added_noise_has_the_asked_snr(triplet_hparams, csv):
    folder = Path(triplet_hparams["augment_folder"])
    add = AddNoise(
        str(folder / csv),
        replacements={"augment_folder": str(folder)},
        snr_low=10,
        snr_high=10,
        pad_noise=True,
        noise_sample_rate=SR,
        clean_sample_rate=SR,
    )
    t = torch.arange(3 * SR) / SR
    clean = torch.stack(
        [0.1 * torch.sin(2 * torch.pi * f * t) for f in (440, 900)]
    )
    noisy = add(clean, torch.ones(2))
    # AddNoise scales the clean part by 1 - a, a = 1 / (10 ** (snr / 20) + 1)
    kept = clean * (1 - 1 / (10 ** (10 / 20) + 1))
    noise = noisy - kept
    snr = 20 * torch.log10(
        kept.pow(2).mean(1).sqrt() / noise.pow(2).mean(1).sqrt()
    )
    assert snr.tolist() == pytest.approx([10.0, 10.0], abs=0.1)
    assert noise.abs().max() > 0.01  # noise really added


def test_yaml_pipeline_shapes_lengths_and_seed(triplet_hparams, tiny_prepared):
    """Every augmentation keeps [batch, time]; the chain doubles the batch
    in order (original rows, then their copies) and repeats under a seed."""
    aug = triplet_hparams["wav_augment"]
    assert len(aug.augmentations) == 8
    torch.manual_seed(0)
    wavs = 0.1 * torch.randn(6, 2 * SR)
    lens = torch.tensor([1.0, 0.5, 0.75, 1.0, 0.6, 0.9])
    for name, module in aug.augmentations.items():
        args = (lens,) if aug.require_lengths[name] else ()
        out = module(wavs, *args)
        assert out.ndim == 2 and out.shape[0] == 6, name
        assert abs(out.shape[1] - wavs.shape[1]) <= 0.05 * wavs.shape[1]
        assert torch.isfinite(out).all(), name
        assert not torch.equal(out, wavs) or "Speed" in name, name

    labels = torch.tensor([0, 0, 1, 1, 2, 2])  # P = 3 speakers x K = 2

    def run(seed: int) -> list[tuple[torch.Tensor, ...]]:
        """Three batches through a fresh wav_augment (as a new run)."""
        augment = _load_yaml("triplet", tiny_prepared, folder)["wav_augment"]
        seed_everything(seed)
        return [
            (*augment(wavs, lens), augment.replicate_labels(labels))
            for _ in range(3)
        ]

    folder = Path(triplet_hparams["augment_folder"])
    first = run(3)
    n = wavs.shape[1]
    for out, out_lens, out_labels in first:
        assert out.shape[0] == 12 and out_lens.shape == (12,)
        assert torch.equal(out[:6, :n], wavs)  # the originals come first
        assert torch.allclose(out_lens[:6] * out.shape[1], lens * n)
        ratio = out_lens[6:] / lens  # each copy keeps its row's length
        assert torch.allclose(ratio, ratio[0].expand(6))
        assert (out[6:] != out[:6]).any()
        assert out_labels.tolist() == labels.tolist() * 2
    for a, b in zip(first, run(3), strict=True):
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert any(
        a.shape != b.shape or not torch.equal(a, b)
        for (a, *_), (b, *_) in zip(first, run(4), strict=True)
    )


def test_triplet_batch_labels_follow_the_copies(triplet_hparams):
    """A P x K batch: augmented training embeds 2 P K rows, each labelled
    with its speaker; validation embeds the batch as it is."""
    brain = TripletBrain(
        modules=triplet_hparams["modules"],
        hparams=triplet_hparams,
        run_opts={"device": "cpu"},
    )
    torch.manual_seed(0)
    batch = PaddedBatch(
        [
            {"id": f"u{i}", "sig": 0.1 * torch.randn(SR + 500 * i), "spk_id": s}
            for i, s in enumerate(["b", "b", "a", "a", "c", "c"])
        ]
    )
    brain.on_stage_start(sb.Stage.TRAIN)
    emb = brain.compute_forward(batch, sb.Stage.TRAIN)
    assert emb.shape == (12, 16)
    labels = brain.augmented_labels(
        torch.tensor([1, 1, 0, 0, 2, 2]), emb, sb.Stage.TRAIN
    )
    assert labels.tolist() == [1, 1, 0, 0, 2, 2] * 2
    loss = brain.compute_objectives(emb, batch, sb.Stage.TRAIN)
    assert torch.isfinite(loss) and brain.n_stats == 1
    assert brain.compute_forward(batch, sb.Stage.VALID).shape == (6, 16)


def test_augmentation_section_same_in_both_yamls():
    def section(name: str) -> str:
        text = (ROOT / "hparams" / f"{name}.yaml").read_text()
        found = re.search(r"\n# Augmentation.*?\n# Features\n", text, re.S)
        assert found, name
        return found.group(0)

    assert section("softmax") == section("triplet")
    assert "\naugment: True" in section("softmax")  # on by default


def test_softmax_epoch_with_augmentation(tiny_corpus, tiny_prepared, tmp_path):
    out, folder = tmp_path / "out", tmp_path / "augment"
    proc = run_script(
        "train_softmax.py",
        ROOT / "hparams" / "softmax.yaml",
        "--data_folder", tiny_corpus,
        "--prep_folder", tiny_prepared,
        "--skip_prep", "True",
        "--augment_folder", folder,
        "--output_folder", out,
        "--number_of_epochs", "1",
        "--batch_size", "8",
        "--sentence_len", "1.5",
        *[f"--{key}={value}" for key, value in MODEL.items()],
        "--num_workers", "0",
        "--device", "cpu",
        "--noprogressbar",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "best validation accuracy" in proc.stdout
    for csv in ("noise.csv", "babble.csv", "rirs.csv"):
        assert (folder / csv).is_file()
    log = (out / "train_log.txt").read_text()
    loss = float(re.search(r"train loss: ([\d.e+-]+)", log)[1])
    assert np.isfinite(loss) and loss > 0
    assert "writing the augmentation files" in (out / "log.txt").read_text()
    assert "\naugment: true " in (out / "hyperparams.yaml").read_text()


def test_image_method_rirs_join_rirs_csv(tiny_prepared, tmp_path):
    """image_rirs adds shoebox-room responses beside the simulated ones,
    reproducibly; without them options.json keeps its older keys, so a
    folder prepared before the option is reused as it is."""
    import json

    csv = tiny_prepared / "train.csv"
    plain = prepare_augmentation(tmp_path / "plain", csv, **SMALL)
    options = json.loads((tmp_path / "plain" / "options.json").read_text())
    assert "n_image_rirs" not in options
    assert len(plain.rir_csv.read_text().splitlines()) == 1 + 4

    def image_rirs(folder: Path, seed: int) -> dict[str, np.ndarray]:
        files = prepare_augmentation(
            folder, csv, seed=seed, n_image_rirs=2, **SMALL
        )
        rows = files.rir_csv.read_text().splitlines()[1:]
        assert [r.split(",")[0] for r in rows] == [
            *(f"rir_{i:03d}" for i in range(4)),
            "image_000",
            "image_001",
        ]
        return {
            p.name: sf.read(p)[0] for p in sorted(folder.glob("rirs/image*"))
        }

    first = image_rirs(tmp_path / "a", 5)
    assert all(np.array_equal(first[k], v) for k, v in image_rirs(
        tmp_path / "b", 5).items())  # fmt: skip
    assert all(
        not np.array_equal(first[k], v)
        for k, v in image_rirs(tmp_path / "c", 6).items()
    )
    for h in first.values():  # starts at the direct path, then decays
        assert np.isfinite(h).all() and int(np.argmax(np.abs(h))) == 0
        tail = np.abs(h[len(h) // 2 :]).max()
        assert tail < 0.2 * np.abs(h[1 : len(h) // 8]).max()


def _channel_transforms(hparams: dict):
    aug = hparams["channel_augment"]
    for name, module in aug.augmentations.items():
        needs = aug.require_lengths[name]
        yield (
            name,
            (
                (lambda x, lens, m=module: m(x, lens))
                if needs
                else (lambda x, lens, m=module: m(x))
            ),
        )


def test_channel_transforms_change_keep_shape_and_repeat(triplet_hparams):
    """Each transform of channel_augment (the YAML's): same shape, finite,
    another signal, the same one again under the same seed."""
    aug = triplet_hparams["channel_augment"]
    assert [type(m).__name__ for m in aug.augmentations.values()] == [
        "RandomEQ",
        "RandomLevel",
        "LowBitrateCodec",
        "LoudnessNorm",
    ]
    assert aug.concat_original is False
    t = torch.arange(2 * SR) / SR
    torch.manual_seed(0)
    wavs = 0.05 * torch.randn(4, 2 * SR) + 0.1 * torch.sin(
        2 * torch.pi * 440 * t
    )
    lens = torch.tensor([1.0, 0.5, 0.75, 0.9])
    wavs[1, SR:] = 0.0  # padding
    for name, apply in _channel_transforms(triplet_hparams):
        torch.manual_seed(1)
        out = apply(wavs.clone(), lens)
        assert out.shape == wavs.shape, name
        assert torch.isfinite(out).all(), name
        assert (out - wavs).abs().max() > 1e-3, name
        torch.manual_seed(1)
        assert torch.equal(apply(wavs.clone(), lens), out), name
        if "Loudness" not in name:  # the one that draws nothing
            torch.manual_seed(2)
            assert not torch.equal(apply(wavs.clone(), lens), out), name


def test_channel_transforms_do_what_they_say():
    from deep_speaker_sb.augment import (
        LoudnessNorm,
        LowBitrateCodec,
        RandomEQ,
        RandomLevel,
    )

    torch.manual_seed(0)
    wavs = 0.1 * torch.randn(3, SR)
    lens = torch.tensor([1.0, 0.5, 1.0])
    wavs[1, SR // 2 :] = 0.0
    rms = lambda x: x.pow(2).mean(1).sqrt()  # noqa: E731
    # the EQ colours each row differently and keeps its level
    out = RandomEQ(SR, tilt_db=6.0, ripple_db=6.0)(wavs)
    assert torch.allclose(rms(out), rms(wavs), rtol=1e-4)
    spec = torch.fft.rfft(out).abs() / torch.fft.rfft(wavs).abs()
    low, high = spec[:, 100:300].mean(1), spec[:, 3000:3800].mean(1)
    assert len(set((high / low).round(decimals=2).tolist())) == 3
    # loud levels clip at full scale; the level ignores the padding
    loud = RandomLevel(6.0, 6.0)(wavs, lens)
    assert loud.abs().max() == 1.0 and (loud.abs() == 1.0).any(1).all()
    quiet = RandomLevel(-30.0, -30.0)(wavs, lens)
    assert torch.allclose(rms(quiet[1:2, : SR // 2]), torch.tensor(10**-1.5))
    norm = LoudnessNorm(-20.0)(wavs * torch.tensor([[0.1], [1.0], [5.0]]), lens)
    for row, n in zip(norm, (SR, SR // 2, SR), strict=True):
        assert float(rms(row[None, :n])) == pytest.approx(0.1, rel=1e-4)
    # the codec removes what lies above half its rate, adds quantization
    codec = LowBitrateCodec(SR, rates=[4000], bits=(4, 4))
    out = codec(wavs)
    spec = torch.fft.rfft(out).abs()
    assert spec[:, 2100:].max() < 1e-3 * spec[:, :1900].max()
    band = torch.fft.irfft(
        torch.fft.rfft(wavs) * (torch.arange(SR // 2 + 1) < 2000), n=SR
    )
    assert (out - band).abs().max() > 1e-3  # 4-bit mu-law noise


def test_spec_augment_masks_training_features_only(triplet_hparams, tmp_path):
    """spec_augment: the training features are masked (time and
    frequency), validation embeddings and the export's are the unmasked
    ones, and compute_embeddings without feature_augment is unchanged."""
    from types import SimpleNamespace

    from deep_speaker_sb.embedding import compute_embeddings
    from deep_speaker_sb.errors import ConfigError
    from deep_speaker_sb.export import export_pretrained
    from deep_speaker_sb.inference import DeepSpeaker

    masks = triplet_hparams["feature_augment"]
    feats = torch.randn(3, 300, 24)
    torch.manual_seed(0)
    out, out_lens = masks(feats.clone(), torch.ones(3))
    assert out.shape == feats.shape and torch.equal(out_lens, torch.ones(3))
    zero = out == 0
    assert zero.all(2).any(1).all()  # whole frames masked in every row
    assert zero.all(1).any(1).all()  # whole bands masked in every row
    assert torch.equal(out[~zero], feats[~zero])  # nothing else changes

    hparams = {**triplet_hparams, "augment": False, "spec_augment": True}
    brain = TripletBrain(
        modules=triplet_hparams["modules"],
        hparams=hparams,
        run_opts={"device": "cpu"},
    )
    brain.modules.eval()  # the same batch-norm statistics in every stage
    batch = PaddedBatch(
        [
            {"id": f"u{i}", "sig": 0.1 * torch.randn(SR + 900 * i)}
            for i in range(3)
        ]
    )
    wavs, lens = batch.sig
    with torch.no_grad():
        plain = compute_embeddings(brain.modules, wavs, lens)
        torch.manual_seed(0)
        train = brain.compute_forward(batch, sb.Stage.TRAIN)
        for stage in (sb.Stage.VALID, sb.Stage.TEST):
            assert torch.equal(brain.compute_forward(batch, stage), plain)
    assert train.shape == plain.shape
    assert (train - plain).abs().max() > 1e-3
    brain.hparams.spec_augment = False
    with torch.no_grad():
        assert torch.equal(brain.compute_forward(batch, sb.Stage.TRAIN), plain)

    folder = export_pretrained(
        tmp_path / "pretrained",
        compute_features=hparams["compute_features"],
        mean_var_norm=hparams["mean_var_norm"],
        embedding_model=hparams["embedding_model"],
        threshold=0.5,
        card={},
        onnx=False,
    )
    assert "drop" not in (folder / "hyperparams.yaml").read_text().lower()
    loaded = DeepSpeaker.from_hparams(source=folder, run_opts={"device": "cpu"})
    assert torch.allclose(loaded.encode_batch(wavs, lens), plain, atol=1e-6)

    brain.hparams = SimpleNamespace(augment=False, spec_augment="yes")
    with pytest.raises(ConfigError, match="spec_augment must be True or"):
        brain.compute_forward(batch, sb.Stage.TRAIN)


def test_channel_sim_on_training_batches_only(triplet_hparams):
    """channel_sim: the training waveforms (after wav_augment) pass through
    channel_augment, keeping the batch; validation never does."""
    from types import SimpleNamespace

    from deep_speaker_sb.errors import ConfigError

    seen = []

    def channel(wavs, lens):
        seen.append(wavs.shape)
        return 0.5 * wavs, lens

    brain = TripletBrain(
        modules=triplet_hparams["modules"],
        hparams=triplet_hparams,
        run_opts={"device": "cpu"},
    )
    doubling = triplet_hparams["wav_augment"]
    brain.hparams = SimpleNamespace(
        augment=True,
        wav_augment=doubling,
        channel_sim=True,
        channel_augment=channel,
    )
    batch = PaddedBatch(
        [{"id": f"u{i}", "sig": 0.1 * torch.randn(SR)} for i in range(3)]
    )
    assert brain.compute_forward(batch, sb.Stage.TRAIN).shape == (6, 16)
    assert len(seen) == 1 and seen[0][0] == 6  # after wav_augment
    brain.compute_forward(batch, sb.Stage.VALID)
    brain.compute_forward(batch, sb.Stage.TEST)
    assert len(seen) == 1
    brain.hparams.channel_sim = False
    brain.compute_forward(batch, sb.Stage.TRAIN)
    assert len(seen) == 1
    # the YAML's channel_augment runs, and one that grows the batch is
    # refused
    brain.hparams.channel_sim = True
    brain.hparams.channel_augment = triplet_hparams["channel_augment"]
    assert brain.compute_forward(batch, sb.Stage.TRAIN).shape == (6, 16)
    brain.hparams.channel_augment = lambda w, n: (w.repeat(2, 1), n.repeat(2))
    with pytest.raises(ConfigError, match="must keep the batch"):
        brain.compute_forward(batch, sb.Stage.TRAIN)


def test_new_options_off_by_default():
    for name in ("softmax", "triplet"):
        text = (ROOT / "hparams" / f"{name}.yaml").read_text()
        for line in (
            "spec_augment: False",
            "channel_sim: False",
            "image_rirs: 0",
            "se_reduction: 0",
            "pooling: mean",
        ):
            assert f"\n{line}" in text, (name, line)


def test_unreadable_training_wav_is_a_data_error(tiny_prepared, tmp_path):
    """The babble reads the training WAVs: one that is not audio is a
    DataError naming it and the manifest, not a soundfile traceback."""
    import csv
    import shutil

    from deep_speaker_sb.errors import DataError

    prep = tmp_path / "prep"
    shutil.copytree(tiny_prepared, prep)
    with open(prep / "train.csv", newline="", encoding="utf-8") as f:
        wavs = {
            r["wav"].replace("{data_root}", str(prep))
            for r in csv.DictReader(f)
        }
    for wav in wavs:  # every one, so whichever the babble reads first
        Path(wav).write_bytes(b"not audio")
    with pytest.raises(DataError) as caught:
        prepare_augmentation(tmp_path / "augment", prep / "train.csv", **SMALL)
    msg = str(caught.value)
    assert "(manifest train.csv, utterance " in msg and "cannot be read" in msg
    assert msg.split()[2] in wavs


@pytest.mark.parametrize("name", ["mulaw", "alaw", "gsm"])
def test_telephone_codec_decodes_as_the_wav_round_trip(name):
    """The headerless round trip gives exactly the samples the WAV one
    gave (the codec itself is unchanged)."""
    import io

    from deep_speaker_sb.augment import CODECS, TelephoneCodec

    g = torch.Generator().manual_seed(3)
    wavs = (0.3 * torch.randn(2, 8001, generator=g)).clamp(-1, 1)
    out = TelephoneCodec(SR, codecs=[name])(wavs)
    for row, got in zip(wavs.numpy(), out.numpy(), strict=True):
        buffer = io.BytesIO()
        sf.write(buffer, row, SR, format="WAV", subtype=CODECS[name][1])
        buffer.seek(0)
        want, _ = sf.read(buffer, dtype="float32")
        np.testing.assert_array_equal(got, want[: len(row)])
    assert not torch.equal(out, wavs)


def test_telephone_codec_failure_keeps_the_waveform(monkeypatch, caplog):
    """A codec error on one waveform (libsndfile once misread a header
    and stopped a triplet run) keeps it unchanged, with a warning."""
    from deep_speaker_sb import augment

    def broken(*args, **kwargs):
        raise sf.LibsndfileError(1, "Error opening <BytesIO>: ")

    monkeypatch.setattr(augment.sf, "read", broken)
    wavs = torch.tensor([[0.5, -2.0, 0.25], [0.1, 0.2, 0.3]])
    with caplog.at_level("WARNING"):
        out = augment.TelephoneCodec(SR, codecs=["alaw"])(wavs)
    assert torch.equal(out, wavs.clamp(-1, 1))
    assert "codec ALAW failed" in caplog.text
