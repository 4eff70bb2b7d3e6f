"""The triplet stage end to end on tiny data: init, EER, resume, export."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from hyperpyyaml import load_hyperpyyaml
from speechbrain.processing.features import InputNormalization
from speechbrain.utils.checkpoints import Checkpointer

from deep_speaker_sb.brains.triplet import (
    dataio_prep,
    export_best,
    init_from_softmax,
    load_initial_stats,
)
from deep_speaker_sb.checkpoints import load_best_parts
from deep_speaker_sb.embedding import compute_embeddings
from deep_speaker_sb.errors import UserError
from deep_speaker_sb.lobes.rescnn import ResCNN
from tests.conftest import (
    ROOT,
    TINY_RESCNN,
    TINY_RESCNN_ARGS,
    run_in_process,
)

YAML = ROOT / "hparams" / "triplet.yaml"

# A narrow model (the same in the fake softmax checkpoint and the YAML).
MODEL, MODEL_ARGS = TINY_RESCNN, TINY_RESCNN_ARGS

#: The keys of the features and model sections, which must be the same in
#: softmax.yaml and triplet.yaml (the triplet stage loads the softmax
#: stage's weights into the model its YAML builds).
MODEL_KEYS = (
    "feature_type",
    "sample_rate",
    "n_mels",
    "n_mfcc",
    "compute_features",
    "n_features",
    "feature_norm",
    "mean_var_norm",
    "channels",
    "emb_dim",
    "blocks_per_stage",
    "pooling",
    "se_reduction",
    "embedding_model",
)


class _TagLoader(yaml.SafeLoader):
    """Reads HyperPyYAML as plain data: a tagged node becomes
    ``{"!tag": value}``, so ``!new:``/``!ref`` specs compare as data."""


def _tagged(loader: yaml.SafeLoader, suffix: str, node: yaml.Node):
    if isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)
    return {f"!{suffix}": value}


_TagLoader.add_multi_constructor("!", _tagged)


def parsed_yaml(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_TagLoader)


def test_model_section_identical_to_softmax_yaml():
    triplet = parsed_yaml(YAML)
    softmax = parsed_yaml(ROOT / "hparams" / "softmax.yaml")
    assert (
        "!new:deep_speaker_sb.lobes.rescnn.ResCNN"
        in (triplet["embedding_model"])
    )
    for key in MODEL_KEYS:
        assert key in triplet and key in softmax, key
        assert triplet[key] == softmax[key], key
    # and the two stages' checkpoints name the model parts alike
    for name in ("embedding_model", "normalizer"):
        spec = "!new:deep_speaker_sb.checkpoints.SafeCheckpointer"
        assert (
            triplet["checkpointer"][spec]["recoverables"][name]
            == softmax["checkpointer"][spec]["recoverables"][name]
        )


@pytest.fixture(scope="module")
def prepared(tiny_corpus, tmp_path_factory) -> Path:
    """tiny_corpus prepared with two or more valid utterances a speaker."""
    from deep_speaker_sb.data.vivos import prepare_vivos

    save = tmp_path_factory.mktemp("triplet_prep") / "vivos8k"
    prepare_vivos(tiny_corpus, save, seed=1, valid_ratio=0.34)
    return save


def fake_softmax(folder: Path, accs=(0.2, 0.8)) -> list[dict]:
    """Softmax-stage checkpoints (as train_softmax.py names them)."""
    states = []
    for acc in accs:
        torch.manual_seed(int(acc * 100))
        model = ResCNN(**MODEL)
        Checkpointer(
            folder,
            recoverables={
                "embedding_model": model,
                "normalizer": InputNormalization(norm_type="sentence"),
            },
        ).save_checkpoint(meta={"ACC": acc, "epoch": 1})
        states.append(model.state_dict())
    return states


def test_init_from_softmax_takes_best_accuracy(tmp_path):
    states = fake_softmax(tmp_path / "save")
    model = ResCNN(**MODEL)
    modules = {
        "embedding_model": model,
        "mean_var_norm": InputNormalization(norm_type="sentence"),
    }
    ckpt = init_from_softmax(tmp_path / "save", modules)
    assert ckpt.meta["ACC"] == 0.8
    for key, value in model.state_dict().items():
        assert torch.equal(value, states[1][key]), key
    wrong = {**modules, "embedding_model": ResCNN(**{**MODEL, "emb_dim": 8})}
    with pytest.raises(UserError, match="does not fit the model"):
        init_from_softmax(tmp_path / "save", wrong)


def run_main(argv: list[str]) -> tuple[int, str]:
    return run_in_process("train_triplet.py", argv)


def base_args(prepared: Path, out: Path, softmax: Path) -> list[str]:
    return [
        str(YAML),
        f"--prep_folder={prepared}",
        f"--output_folder={out}",
        f"--softmax_ckpt_folder={softmax}",
        "--device=cpu",
        "--num_workers=0",
        "--speakers_per_batch=4",
        "--n_per_speaker=2",
        "--batches_per_epoch=3",
        "--lr=0.001",
        *MODEL_ARGS,
    ]


def test_missing_softmax_checkpoint_is_one_line(prepared, tmp_path):
    args = base_args(prepared, tmp_path / "out", tmp_path / "nothing")
    code, err = run_main(args)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "no softmax checkpoint" in err
    assert "train_softmax.py" in err and "init_from: scratch" in err


def test_too_few_valid_utterances_is_clear(prepared, tmp_path):
    # A valid.csv with one utterance per speaker gives no target trial.
    lines = (prepared / "valid.csv").read_text().splitlines()
    kept, seen = [lines[0]], set()
    for line in lines[1:]:
        spk = line.split(",")[5]
        utt = line.split(",")[2]
        if spk not in seen or utt == kept[-1].split(",")[2]:
            seen.add(spk)
            kept.append(line)
    (tmp_path / "valid.csv").write_text("\n".join(kept) + "\n")
    hparams = {
        "prep_folder": prepared,
        "train_annotation": prepared / "train.csv",
        "valid_annotation": tmp_path / "valid.csv",
        "sentence_len": 3.0,
        "sample_rate": 8000,
        "speakers_per_batch": 2,
        "n_per_speaker": 2,
        "batches_per_epoch": None,
        "small_speakers": "replace",
        "num_valid_trials": 100,
        "seed": 1,
    }
    with pytest.raises(UserError, match="larger valid_ratio"):
        dataio_prep(hparams)
    hparams["valid_annotation"] = prepared / "valid.csv"
    train, valid, sampler = dataio_prep(hparams)
    # One item per utterance (not per segment).
    assert len(valid) == len({line.split(",")[2] for line in lines[1:]})
    assert len(sampler) == len(train) // 4


def test_train_resume_and_export(prepared, tmp_path):
    softmax = tmp_path / "softmax_save"
    softmax_states = fake_softmax(softmax)
    out = tmp_path / "triplet"
    args = base_args(prepared, out, softmax)

    code, err = run_main([*args, "--number_of_epochs=2"])
    assert code == 0, err
    log = (out / "train_log.txt").read_text().splitlines()
    assert [line.split(",")[0] for line in log] == [
        "epoch: 0",
        "epoch: 1",
        "epoch: 2",
    ]
    assert "init: softmax" in log[0] and "valid EER" in log[0]
    for line in log[1:]:
        for key in ("train loss", "train SAP", "train SAN", "valid EER"):
            assert key in line, line
    export = out / "pretrained"
    assert (export / "threshold.json").is_file()
    # the ONNX graph and its int8 copy (calibrated on train.csv audio)
    onnx_entry = json.loads((export / "config.json").read_text())["onnx"]
    assert (export / onnx_entry["fp32"]).is_file()
    assert (export / onnx_entry["int8"]).is_file()
    # The model before triplet training is exported too: the weights of
    # the best (max ACC) softmax checkpoint, with the epoch-0 threshold.
    initial = out / "pretrained_init"
    init_state = torch.load(initial / "embedding_model.ckpt")
    for key, value in softmax_states[1].items():
        assert torch.equal(value, init_state[key]), key
    init_threshold = json.loads((initial / "threshold.json").read_text())
    assert init_threshold["threshold"] == pytest.approx(
        load_initial_stats(out)["threshold"], abs=1e-5
    )

    # Resume: only epoch 3 runs; the softmax weights are not reloaded.
    code, err = run_main([*args, "--number_of_epochs=3"])
    assert code == 0, err
    log = (out / "train_log.txt").read_text().splitlines()
    assert [line.split(",")[0] for line in log][3:] == ["epoch: 3"]

    # The export is the best-EER checkpoint and loads back.
    with open(out / "hyperparams.yaml", encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f)
    best = load_best_parts(
        out / "save", hparams["modules"], min_key="EER", missing="none"
    )
    eers = [
        float(re.search(r"valid EER: ([\d.e+-]+)", line)[1]) for line in log
    ]
    assert best.meta["EER"] == pytest.approx(min(eers[1:]), abs=1e-3)
    exported = torch.load(export / "embedding_model.ckpt")
    for key, value in hparams["embedding_model"].state_dict().items():
        assert torch.equal(value, exported[key]), key

    from deep_speaker_sb.inference import DeepSpeaker

    model = DeepSpeaker.from_hparams(source=export)
    assert model.threshold == pytest.approx(best.meta["threshold"])
    # the score calibration of the best epoch's validation trials
    config = json.loads((export / "config.json").read_text())
    assert (
        config["calibration"] == best.meta["score_calibration"]["calibration"]
    )
    assert config["calibration"]["fitted_on"] == "validation trials"
    eer_point = config["operating_points"]["eer"]
    assert eer_point["threshold"] == pytest.approx(best.meta["threshold"])
    assert model.operating_point.name == "eer"
    assert model.calibration.a > 0
    wav = next((prepared / "wavs" / "train").rglob("*.wav"))
    from speechbrain.dataio.dataio import read_audio

    sig = read_audio(str(wav)).unsqueeze(0)
    for module in hparams["modules"].values():
        module.eval()
    with torch.no_grad():
        ours = compute_embeddings(hparams["modules"], sig, torch.ones(1))
    theirs = model.encode_file(wav)
    assert torch.allclose(ours[0], theirs, atol=1e-5)

    # Export only: no training, the folder is written again.
    (export / "model_card.md").unlink()
    code, err = run_main([*args, "--number_of_epochs=3", "--export_only=True"])
    assert code == 0, err
    assert (export / "model_card.md").is_file()
    assert len((out / "train_log.txt").read_text().splitlines()) == 4


def test_export_takes_lowest_eer_not_last(tmp_path):
    from deep_speaker_sb.export import read_threshold
    from deep_speaker_sb.features import Features

    states = {}
    for epoch, eer in enumerate((0.05, 0.03, 0.04), start=1):
        torch.manual_seed(epoch)
        model = ResCNN(**MODEL)
        Checkpointer(
            tmp_path / "save",
            recoverables={
                "embedding_model": model,
                "normalizer": InputNormalization(norm_type="sentence"),
            },
        ).save_checkpoint(
            meta={
                "EER": eer,
                "threshold": epoch / 10,
                "epoch": epoch,
                "score_calibration": {
                    "calibration": {"a": 10.0 * epoch, "b": -1.0},
                    "operating_points": {
                        "eer": {"threshold": epoch / 10},
                        "far_0.01": {"threshold": 0.9, "target_far": 0.01},
                    },
                },
            }
        )
        states[epoch] = model.state_dict()
    model = ResCNN(**MODEL)
    norm = InputNormalization(norm_type="sentence")
    hparams = {
        "save_folder": tmp_path / "save",
        "output_folder": tmp_path,
        "pretrained_folder": tmp_path / "pretrained",
        "modules": {"embedding_model": model, "mean_var_norm": norm},
        "compute_features": Features(n_mels=24),
        "mean_var_norm": norm,
        "embedding_model": model,
        "prep_folder": "data",
        "number_of_epochs": 3,
        "init_from": "scratch",
        "mining": "semihard",
        "margin": 0.1,
        "speakers_per_batch": 2,
        "n_per_speaker": 2,
        "lr": 0.001,
        "lr_final": 0.0001,
        "seed": 1,
    }
    folder = export_best(hparams)
    assert read_threshold(folder) == pytest.approx(0.2)
    # the best checkpoint's score calibration, through its metadata
    config = json.loads((folder / "config.json").read_text())
    assert config["calibration"]["a"] == 20.0
    assert config["operating_points"]["far_0.01"]["threshold"] == 0.9
    exported = torch.load(folder / "embedding_model.ckpt")
    for key, value in states[2].items():
        assert torch.equal(value, exported[key]), key
    card = (folder / "model_card.md").read_text()
    assert "best: epoch 2" in card
    assert "| validation EER | 3.00% |" in card  # EER is a fraction


@pytest.mark.parametrize("stage", ["softmax", "triplet"])
def test_yaml_default_folders_are_the_defaults_module(stage):
    """The YAMLs, as a user runs them with no folder given, write where
    deep_speaker_sb.defaults says (verify.py looks there)."""
    from deep_speaker_sb import defaults

    overrides = {"data_folder": "/corpus"} if stage == "softmax" else {}
    with open(ROOT / "hparams" / f"{stage}.yaml", encoding="utf-8") as f:
        hp = load_hyperpyyaml(f, overrides)
    assert hp["prep_folder"] == defaults.PREP_FOLDER
    assert hp["train_annotation"] == f"{defaults.PREP_FOLDER}/train.csv"
    seed = hp["seed"]
    results = f"{defaults.RESULTS_ROOT}/{stage}/{seed}"
    assert hp["output_folder"] == results
    if stage == "triplet":
        assert results.startswith(defaults.TRIPLET_RESULTS)
        assert hp["pretrained_folder"] == (
            f"{results}/{defaults.PRETRAINED_DIR}"
        )
        assert hp["softmax_ckpt_folder"] == (
            f"{defaults.RESULTS_ROOT}/softmax/{seed}/save"
        )


def test_softmax_checkpoint_with_other_input_is_one_line(prepared, tmp_path):
    """A softmax checkpoint trained with another feature_norm (or feature
    type, bands, rate) gave a silent 35% EER or a shape traceback."""
    softmax = tmp_path / "softmax_save"
    Checkpointer(
        softmax,
        recoverables={
            "embedding_model": ResCNN(**MODEL),
            "normalizer": InputNormalization(norm_type="global"),
        },
    ).save_checkpoint(
        meta={
            "ACC": 0.9,
            "epoch": 1,
            "input": {"feature_norm": "global", "n_mels": 24},
        }
    )
    args = base_args(prepared, tmp_path / "out", softmax)
    code, err = run_main([*args, "--feature_norm=sentence"])
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert "feature_norm 'global' (YAML: 'sentence')" in err
    assert "n_mels" not in err  # the same in both


def test_checkpoints_record_their_input(prepared, tmp_path):
    softmax = tmp_path / "softmax_save"
    fake_softmax(softmax)
    out = tmp_path / "triplet"
    args = base_args(prepared, out, softmax)
    code, err = run_main([*args, "--number_of_epochs=1"])
    assert code == 0, err
    ckpt = Checkpointer(out / "save").find_checkpoint(min_key="EER")
    assert ckpt.meta["input"] == {
        "kind": "fbank",
        "sample_rate": 8000,
        "n_mels": 24,
        "n_mfcc": 40,
        "feature_norm": "sentence",
    }

    # Killed before its first checkpoint (epoch 0 logged, nothing saved):
    # the restart does not log epoch 0 a second time.
    log = out / "train_log.txt"
    log.write_text(log.read_text().splitlines()[0] + "\n")
    shutil.rmtree(out / "save")
    code, err = run_main([*args, "--number_of_epochs=1"])
    assert code == 0, err
    lines = log.read_text().splitlines()
    assert [line.split(",")[0] for line in lines] == ["epoch: 0", "epoch: 1"]


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--no_such_key=3"], ["unknown option --no_such_key"]),
        (["--lr=0.1", "--lr=0.2"], ["not valid YAML", "twice"]),
        (["--number_of_epochs=abc"], ["wrong type"]),
        (["--device=foo"], ["--device foo", "cpu"]),
    ],
)
def test_option_mistakes_are_one_line(prepared, tmp_path, extra, words):
    """Each gave a traceback before (KeyError, DuplicateKeyError,
    TypeError, a late device error)."""
    args = base_args(prepared, tmp_path / "out", tmp_path / "softmax")
    args = [a for a in args if not a.startswith("--device")]
    code, err = run_main([*args, *extra])
    assert code == 1, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for word in words:
        assert word in err


def test_cuda_without_a_gpu_and_broken_yaml_are_one_line(prepared, tmp_path):
    args = base_args(prepared, tmp_path / "out", tmp_path / "softmax")
    if not torch.cuda.is_available():
        cuda = [a for a in args if not a.startswith("--device")]
        code, err = run_main([*cuda, "--device=cuda"])
        assert code == 1 and "0 CUDA device(s)" in err
    broken = tmp_path / "broken.yaml"
    broken.write_text("seed: [1,\n")
    code, err = run_main([str(broken)])
    assert code == 1 and err.startswith("error: ") and "not valid YAML" in err
