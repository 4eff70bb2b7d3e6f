"""bench/accuracy.py's pure parts: the seed summary, the ECAPA-TDNN swap
in the recipe YAML, the run layout and its options (issue #18).

Nothing here trains (``tests/test_ecapa.py`` trains a tiny ECAPA-TDNN).
"""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml

from deep_speaker_sb.lobes.ecapa import EcapaTDNN
from deep_speaker_sb.lobes.rescnn import ResCNN
from tests.conftest import ROOT, load_script

bench = load_script("bench/accuracy.py")


def test_doctests():
    result = doctest.testmod(bench, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 5 and result.failed == 0


def _fake_rows() -> list[dict]:
    """Per-seed rows of two models (3 seeds) and the MFCC row."""
    rows = [{"variant": "mfcc", "eer": 0.39, "min_dcf_0.01": 1.0,
             "train_minutes": 0.0, "params": 0}]  # fmt: skip
    for seed, eer, cross, same, dcf, minutes in (
        (1, 0.14, 0.16, 0.12, 0.97, 13.0),
        (2, 0.12, 0.15, 0.11, 0.95, 15.0),
        (3, 0.13, 0.17, 0.13, 0.99, 14.0),
    ):
        for variant, shift in (("augment, softmax+triplet", 0.0),
                               ("ecapa, AAM softmax", -0.02)):  # fmt: skip
            rows.append(
                {
                    "variant": variant,
                    "seed": seed,
                    "params": 711600 if shift == 0 else 688752,
                    "eer": eer + shift,
                    "eer_cross": cross + shift,
                    "eer_same": same + shift,
                    "min_dcf_0.01": dcf,
                    "n_trials": 30000,
                    "train_minutes": minutes,
                }
            )
    return rows


def test_summary_over_seeds():
    summary = bench.summarize_seeds(_fake_rows())
    assert [e["variant"] for e in summary] == [
        "mfcc",
        "augment, softmax+triplet",
        "ecapa, AAM softmax",
    ]
    mfcc, augment, ecapa = summary
    assert mfcc["n_seeds"] == 1 and mfcc["eer"]["std"] == 0.0
    assert "eer_cross" not in mfcc  # not in its row
    assert augment["seeds"] == [1, 2, 3] and augment["n_seeds"] == 3
    assert augment["params"] == 711600 and ecapa["params"] == 688752
    eer = augment["eer"]
    assert eer["mean"] == pytest.approx(0.13)
    assert eer["std"] == pytest.approx(0.01)  # sample std of .14 .12 .13
    assert (eer["min"], eer["max"]) == pytest.approx((0.12, 0.14))
    assert ecapa["eer"]["mean"] == pytest.approx(0.11)
    assert augment["eer_cross"]["mean"] == pytest.approx(0.16)
    assert augment["eer_same"]["max"] == pytest.approx(0.13)
    assert augment["min_dcf_0.01"]["mean"] == pytest.approx(0.97)
    assert augment["train_minutes"] == {
        "mean": 14.0, "std": 1.0, "min": 13.0, "max": 15.0,
    }  # fmt: skip


def test_summary_files(tmp_path):
    bench.write_summary(tmp_path, _fake_rows())
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert "sample standard deviation" in saved["spread"]
    assert len(saved["models"]) == 3
    table = (tmp_path / "summary.md").read_text().splitlines()
    row = next(line for line in table if line.startswith("| augment"))
    assert row == (
        "| augment, softmax+triplet | 3 | 13.00% ± 1.00 (12.00–14.00) "
        "| 16.00% ± 1.00 (15.00–17.00) | 12.00% ± 1.00 (11.00–13.00) "
        "| 0.970 ± 0.020 (0.950–0.990) | 711,600 "
        "| 14.0 ± 1.0 (13.0–15.0) |"
    )
    mfcc = next(line for line in table if line.startswith("| mfcc"))
    assert mfcc == "| mfcc | 1 | 39.00% | – | – | 1.000 | 0 | 0.0 |"


def test_ecapa_swap_keeps_the_rest_of_the_recipe(tmp_path):
    path = bench.ecapa_yaml(tmp_path)
    recipe = (ROOT / "hparams" / "softmax.yaml").read_text()
    swapped = path.read_text()
    assert "lobes.rescnn.ResCNN" in recipe
    assert "lobes.rescnn.ResCNN" not in swapped
    overrides = {"data_folder": str(tmp_path), "n_mels": 40, "emb_dim": 128}
    hp_ecapa = load_hyperpyyaml(swapped, overrides)
    hp_recipe = load_hyperpyyaml(recipe, overrides)
    model = hp_ecapa["embedding_model"]
    assert isinstance(model, EcapaTDNN)
    assert isinstance(hp_recipe["embedding_model"], ResCNN)
    assert model.config["channels"] == list(bench.ECAPA_CHANNELS)
    assert (model.config["n_mels"], model.config["emb_dim"]) == (40, 128)
    assert bench.n_parameters(model) == 688752
    # the same object in modules and checkpointer, as with the ResCNN
    assert hp_ecapa["modules"]["embedding_model"] is model
    assert hp_ecapa["checkpointer"].recoverables["embedding_model"] is model
    # every other plain setting is the recipe's
    plain = (int, float, str, bool, list, type(None))
    for key, value in hp_recipe.items():
        if isinstance(value, plain):
            assert hp_ecapa[key] == value, key
    with pytest.raises(ValueError, match="found 0"):
        bench.swap_embedding_model("a: 1\n", bench.ecapa_block())


def test_run_layout_and_options(tmp_path):
    assert bench.run_folder(tmp_path, "base", None) == tmp_path / "base"
    assert bench.run_folder(tmp_path, "ecapa", 3) == tmp_path / "ecapa/seed3"
    args = bench.parse_args(
        ["--prep_folder", "p", "--out", "o", "--variants", "mfcc,ecapa",
         "--seeds", "1,2,3", "--scoring", "cosine,asnorm,crops",
         "--asnorm_top", "50", "--crops", "2"]
    )  # fmt: skip
    assert args.seeds == [1, 2, 3] and args.variants == ["mfcc", "ecapa"]
    assert [s.suffix for s in args.scorings] == [
        "",
        "asnorm50of1000",
        "crops2x3s",
    ]
    assert args.scorings[1].verify_args() == [
        "--snorm", "--cohort_size", "1000", "--snorm_top", "50",
    ]  # fmt: skip
    for bad in (
        ["--variants", "augment_seed2", "--seeds", "1"],
        ["--variants", "nope"],
        ["--scoring", "znorm"],
        ["--seeds", "1,1"],
        ["--epochs_scale", "0"],
    ):
        with pytest.raises(SystemExit):
            bench.parse_args(["--prep_folder", "p", "--out", "o", *bad])
    # a run folder refuses to resume with other training options
    bench._check_options(tmp_path, "softmax", ["--lr", "1"])
    bench._check_options(tmp_path, "softmax", ["--lr", "1"])
    with pytest.raises(SystemExit, match="other options"):
        bench._check_options(tmp_path, "softmax", ["--lr", "2"])
    assert bench.scale_epochs(bench.SOFTMAX, 0.05)[1] == "1"
    ecapa = bench.set_epochs(bench.SOFTMAX, bench.ECAPA_EPOCHS)
    assert ecapa[ecapa.index("--number_of_epochs") + 1] == str(
        bench.ECAPA_EPOCHS
    )


def _fake_scripts(tmp_path, calls):
    """A stand-in for ``bench._run``: records each call; the softmax stage
    writes its folder, the triplet stage tiny exports, verify.py scores."""
    from speechbrain.processing.features import InputNormalization

    from deep_speaker_sb.export import export_pretrained
    from deep_speaker_sb.features import Features
    from deep_speaker_sb.scoring import write_scores

    trials = [(1, "a", "b"), (0, "a", "c"), (1, "c", "d"), (0, "b", "d")]

    def fake_run(script, args, log):
        args = [str(a) for a in args]
        calls.append((script, args))
        value = dict(zip(args, args[1:], strict=False))
        if script == "train_softmax.py":
            out = Path(value["--output_folder"]) / "save"
            out.mkdir(parents=True)
            (out / "label_encoder.txt").write_text("trained\n")
        if script == "train_triplet.py":
            out = tmp_path / value["--output_folder"]
            for name in ("pretrained_init", "pretrained"):
                export_pretrained(
                    out / name,
                    compute_features=Features(n_mels=16),
                    mean_var_norm=InputNormalization("sentence"),
                    embedding_model=ResCNN(n_mels=16, channels=(4,), emb_dim=8),
                    threshold=0.5,
                    card={},
                    onnx=False,
                )
        if script == "verify.py":
            out = tmp_path / value["--out"]
            out.mkdir(parents=True)
            scores = torch.tensor([0.9, 0.1, 0.8, 0.2])
            write_scores(out / "scores.txt", trials, scores)
        return 1.5

    return fake_run


def test_run_variant_plumbing(tmp_path, monkeypatch):
    """run_variant with the scripts faked: seed, scorings and epochs reach
    the right commands, and each row has its label, seed and params."""
    calls = []
    fake_run = _fake_scripts(tmp_path, calls)
    monkeypatch.setattr(bench, "_run", fake_run)
    folder = tmp_path / "augment" / "seed7"
    scorings = [bench.Scoring(), bench.Scoring("crops", crops=2)]
    rows = bench.run_variant(
        "augment",
        tmp_path / "prep",
        folder,
        {},
        seed=7,
        scorings=scorings,
        epochs_scale=0.1,
    )
    assert [r["variant"] for r in rows] == [
        "augment, softmax",
        "augment, softmax, crops2x3s",
        "augment, softmax+triplet",
        "augment, softmax+triplet, crops2x3s",
    ]
    assert {r["seed"] for r in rows} == {7}
    params = bench.n_parameters(ResCNN(n_mels=16, channels=(4,), emb_dim=8))
    assert {r["params"] for r in rows} == {params}
    assert [r["train_minutes"] for r in rows] == [1.5, 1.5, 3.0, 3.0]
    assert all(r["eer"] == 0.0 for r in rows)
    scripts = [c[0] for c in calls]
    assert (
        scripts == ["train_softmax.py", "train_triplet.py"] + ["verify.py"] * 4
    )
    for (_, args), epochs in zip(calls[:2], ("2", "1"), strict=True):
        assert args[args.index("--seed") + 1] == "7"
        assert args[args.index("--number_of_epochs") + 1] == epochs
    assert calls[3][1][-4:] == ["--crops", "2", "--crop_len", "3.0"]
    assert (folder / "verify_pretrained_crops2x3s" / "scores.txt").is_file()
    # a second call resumes: nothing is run again
    calls.clear()
    again = bench.run_variant(
        "augment", tmp_path / "prep", folder, {}, seed=7, scorings=scorings,
        epochs_scale=0.1,
    )  # fmt: skip
    assert calls == [] and again == rows


def test_variants_share_their_softmax_stage(tmp_path, monkeypatch):
    """A variant that differs from another in its triplet stage only (the
    ``_p32`` ones) copies that variant's trained softmax stage of the same
    seed: it trains only its triplet stage (with its own options), and its
    rows count the shared stage's minutes.  Another seed trains anew."""
    calls = []
    monkeypatch.setattr(bench, "_run", _fake_scripts(tmp_path, calls))
    prep, out = tmp_path / "prep", tmp_path / "runs"

    def run(variant, seed):
        folder = bench.run_folder(out, variant, seed)
        return bench.run_variant(
            variant, prep, folder, {}, seed=seed, epochs_scale=0.1
        )

    first = run("time2_se_att", 1)
    calls.clear()
    shared = run("time2_se_att_p32", 1)
    assert [c[0] for c in calls] == ["train_triplet.py"] + ["verify.py"] * 2
    triplet = calls[0][1]
    assert triplet[triplet.index("--speakers_per_batch") + 1] == "32"
    assert triplet.count("--speakers_per_batch") == 1
    folder = out / "time2_se_att_p32" / "seed1"
    assert triplet[triplet.index("--softmax_ckpt_folder") + 1] == str(
        folder / "softmax" / "save"
    )
    assert (folder / "softmax" / "save" / "label_encoder.txt").is_file()
    assert [r["train_minutes"] for r in shared] == [1.5, 3.0]
    assert [r["train_minutes"] for r in first] == [1.5, 3.0]
    # the original's triplet stage keeps the YAML budget's 16 speakers
    assert "--speakers_per_batch 16" in " ".join(
        bench.stage_options("time2_se_att", "triplet")
    )
    # another seed, or a variant with another softmax stage, trains its own
    calls.clear()
    run("time2_se_att_p32", 2)
    run("time1_se_att_p32", 1)
    assert [c[0] for c in calls].count("train_softmax.py") == 2


def test_margin_variant_changes_the_triplet_stage_only():
    """``time2_se_att_bn_m2`` trains ``time2_se_att_bn``'s softmax stage
    (so it shares it) and a triplet stage with the margin 0.2, where
    the original keeps the YAML's 0.1."""
    softmax = bench.stage_options("time2_se_att_bn_m2", "softmax", seed=1)
    assert softmax == bench.stage_options("time2_se_att_bn", "softmax", seed=1)
    triplet = bench.stage_options("time2_se_att_bn_m2", "triplet", seed=1)
    assert triplet[triplet.index("--margin") + 1] == "0.2"
    assert "--margin" not in bench.stage_options("time2_se_att_bn", "triplet")


@pytest.mark.parametrize("variant", sorted(bench.VARIANTS))
def test_stage_options_build_the_variants_model(variant, tmp_path):
    """Each variant's softmax options, as the recipe parses them, build the
    model the variant names (a YAML key named twice would not load)."""
    import speechbrain as sb

    options = bench.stage_options(variant, "softmax", seed=3)
    _, _, overrides = sb.parse_arguments(
        ["hparams/softmax.yaml", *options, "--data_folder", str(tmp_path)]
        + ["--output_folder", str(tmp_path / "out")]
    )
    with open(ROOT / "hparams" / "softmax.yaml", encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f, overrides)
    config = hparams["embedding_model"].config
    both, softmax_only = bench.VARIANTS[variant]
    wanted = dict(zip(both[::2], both[1::2], strict=True))
    channels = json.loads(wanted.get("--channels", "[16, 32, 64, 128]"))
    assert config["channels"] == channels
    assert config["pooling"] == wanted.get("--pooling", "mean")
    assert config["se_reduction"] == int(wanted.get("--se_reduction", 0))
    blocks = int(wanted.get("--blocks_per_stage", 1))
    assert config["blocks_per_stage"] == blocks
    strides = json.loads(wanted.get("--time_strides", "[2, 2, 2, 2]"))
    assert config["time_strides"] == strides
    assert config["freq_coord"] == (wanted.get("--freq_coord") == "True")
    assert config["pool_bn"] == (wanted.get("--pool_bn") == "True")
    assert hparams["seed"] == 3
    aam = "--pretrain_loss" in softmax_only
    assert hparams["pretrain_loss"] == ("aam" if aam else "softmax")
    assert "--pretrain_loss" not in bench.stage_options(variant, "triplet")
    copies = 3 if variant.endswith("_spk3") else 1
    assert hparams["speaker_copies"].n_copies == copies
    assert "--speaker_speeds" not in bench.stage_options(variant, "triplet")


class _Stop(Exception):
    """Raised by a fake script runner to end a run after its first call."""


@pytest.mark.parametrize("peer", sorted(bench.PEERS))
def test_peers_train_with_their_softmax_options(peer, tmp_path, monkeypatch):
    """``ecapa_spk3`` trains the ECAPA-TDNN peer with the speed-perturbed
    speakers, ``ecapa`` without; both with the peer's YAML and epochs."""
    calls = []

    def fake_run(script, args, log):
        calls.append((script, [str(a) for a in args]))
        raise _Stop

    monkeypatch.setattr(bench, "_run", fake_run)
    with pytest.raises(_Stop):
        bench.run_ecapa(tmp_path / "prep", tmp_path / peer, {}, variant=peer)
    ((script, args),) = calls
    assert script == "train_softmax.py"
    assert args[0] == str(tmp_path / peer / "softmax.yaml")
    assert args[args.index("--number_of_epochs") + 1] == str(bench.ECAPA_EPOCHS)
    speeds = (
        args[args.index("--speaker_speeds") + 1]
        if ("--speaker_speeds" in args)
        else None
    )
    assert speeds == ("[90, 110]" if peer.endswith("_spk3") else None)
