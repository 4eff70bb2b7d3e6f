"""Fine-tuning an export (``init_from: pretrained``) in both stages.

A tiny export with known random weights is made first; each stage trains
from it for one epoch on the tiny corpus.  The weights the training starts
from must be the export's (not the YAML's random ones), training must move
them, a resumed run must not load the export again, and a YAML that builds
another model must be refused in one line.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from speechbrain.processing.features import InputNormalization

from deep_speaker_sb.dataio import read_manifest
from deep_speaker_sb.export import export_pretrained
from deep_speaker_sb.features import Features
from deep_speaker_sb.finetune import init_from_pretrained, model_differences
from deep_speaker_sb.lobes.rescnn import ResCNN
from tests.conftest import (
    ROOT,
    TINY_RESCNN,
    TINY_RESCNN_ARGS,
    run_in_process,
)

MODEL = TINY_RESCNN
MODEL_ARGS = [
    *TINY_RESCNN_ARGS,
    "--device=cpu",
    "--num_workers=0",
    "--augment=False",
    "--noprogressbar",
]


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    """An export of a narrow ResCNN with seeded random weights."""
    torch.manual_seed(123)
    model = ResCNN(**MODEL)
    # distinct from any fresh init: shift every weight
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5)
    return export_pretrained(
        tmp_path_factory.mktemp("export") / "pretrained",
        compute_features=Features(n_mels=24),
        mean_var_norm=InputNormalization(norm_type="sentence"),
        embedding_model=model.eval(),
        threshold=0.4,
        card={"data": "test"},
    )


@pytest.fixture(scope="module")
def prepared(tiny_corpus, tmp_path_factory) -> Path:
    """tiny_corpus prepared with two or more valid utterances a speaker."""
    from deep_speaker_sb.data.vivos import prepare_vivos

    save = tmp_path_factory.mktemp("finetune_prep") / "vivos8k"
    prepare_vivos(tiny_corpus, save, seed=1, valid_ratio=0.34)
    return save


def _params(state: dict) -> dict[str, torch.Tensor]:
    """The trainable tensors of a ResCNN state dict (no BN buffers)."""
    names = {n for n, _ in ResCNN(**MODEL).named_parameters()}
    return {k: v for k, v in state.items() if k in names}


def _export_state(export: Path) -> dict[str, torch.Tensor]:
    return torch.load(export / "embedding_model.ckpt", weights_only=True)


def run_main(script_name: str, argv: list[str]) -> tuple[int, str]:
    """Runs a script in-process; a later ``--key=value`` replaces an
    earlier one (an override given twice is an error of its own)."""
    last = {a.split("=")[0]: i for i, a in enumerate(argv)}
    argv = [a for i, a in enumerate(argv) if last[a.split("=")[0]] == i]
    return run_in_process(script_name, argv)


def softmax_args(prepared: Path, out: Path, export: Path) -> list[str]:
    return [
        str(ROOT / "hparams" / "softmax.yaml"),
        "--data_folder=unused",
        "--skip_prep=True",
        f"--prep_folder={prepared}",
        f"--output_folder={out}",
        "--init_from=pretrained",
        f"--init_pretrained={export}",
        "--batch_size=8",
        "--lr=0.001",
        *MODEL_ARGS,
    ]


def triplet_args(prepared: Path, out: Path, export: Path) -> list[str]:
    return [
        str(ROOT / "hparams" / "triplet.yaml"),
        f"--prep_folder={prepared}",
        f"--output_folder={out}",
        "--init_from=pretrained",
        f"--init_pretrained={export}",
        "--speakers_per_batch=4",
        "--n_per_speaker=2",
        "--batches_per_epoch=3",
        "--lr=0.001",
        *MODEL_ARGS,
    ]


def test_softmax_starts_from_the_export_and_resumes_without_it(
    prepared, export, tmp_path, monkeypatch
):
    from deep_speaker_sb.brains.softmax import SoftmaxBrain

    started: list[dict[str, torch.Tensor]] = []
    fit = SoftmaxBrain.fit

    def recording_fit(self, *args, **kwargs):
        state = self.modules.embedding_model.state_dict()
        started.append({k: v.clone() for k, v in state.items()})
        return fit(self, *args, **kwargs)

    monkeypatch.setattr(SoftmaxBrain, "fit", recording_fit)
    out = tmp_path / "softmax"
    args = softmax_args(prepared, out, export)
    code, err = run_main("train_softmax.py", [*args, "--number_of_epochs=1"])
    assert code == 0, err
    want = _params(_export_state(export))
    # Before training: exactly the export's weights.
    for key, value in want.items():
        assert torch.equal(started[0][key], value), key
    # After one epoch: moved, and still near them (a fine-tune).
    ckpt = next((out / "save").glob("CKPT+*"))
    trained = _params(torch.load(ckpt / "embedding_model.ckpt"))
    moved = sum(float((trained[k] - v).norm()) for k, v in want.items())
    assert moved > 0
    # The classifier is new: one class per speaker of this data.
    classifier = torch.load(ckpt / "classifier.ckpt")
    speakers = {r.spk_id for r in read_manifest(prepared / "train.csv")}
    assert classifier["weight"].shape == (len(speakers), MODEL["emb_dim"])

    # Resume with the export gone: it must not be loaded again (that would
    # fail); fit() then recovers the checkpoint, not the export.
    args = softmax_args(prepared, out, tmp_path / "gone")
    code, err = run_main("train_softmax.py", [*args, "--number_of_epochs=2"])
    assert code == 0, err
    assert any(not torch.equal(started[1][k], v) for k, v in want.items())
    log = out.joinpath("train_log.txt").read_text().splitlines()
    assert [line.split(",")[0] for line in log] == ["epoch: 1", "epoch: 2"]


def test_triplet_starts_from_the_export(prepared, export, tmp_path):
    out = tmp_path / "triplet"
    args = triplet_args(prepared, out, export)
    code, err = run_main("train_triplet.py", [*args, "--number_of_epochs=1"])
    assert code == 0, err
    want = _export_state(export)
    # The model before triplet training (exported at epoch 0) is the
    # export, weights and buffers alike.
    initial = torch.load(out / "pretrained_init" / "embedding_model.ckpt")
    assert initial.keys() == want.keys()
    for key, value in want.items():
        assert torch.equal(initial[key], value), key
    final = _params(torch.load(out / "pretrained" / "embedding_model.ckpt"))
    assert any(not torch.equal(final[k], v) for k, v in _params(want).items())
    card = (out / "pretrained" / "model_card.md").read_text()
    assert f"| initial model | {export} |" in card
    assert "| init_from | pretrained |" in card


@pytest.mark.parametrize(
    "script, extra, words",
    [
        (
            "train_triplet.py",
            ["--channels=[8, 16]", "--emb_dim=32"],
            ["channels [4, 8] (YAML: [8, 16])", "emb_dim 16 (YAML: 32)"],
        ),
        (
            "train_softmax.py",
            ["--sample_rate=16000", "--pooling=stats"],
            [
                "sample_rate 8000 (YAML: 16000)",
                "pooling 'mean' (YAML: 'stats')",
            ],
        ),
        (
            "train_softmax.py",
            ["--feature_type=mfcc", "--n_mfcc=24"],
            ["feature_type 'fbank' (YAML: 'mfcc')"],
        ),
    ],
)
def test_model_mismatch_is_one_line(
    prepared, export, tmp_path, script, extra, words
):
    make = softmax_args if script == "train_softmax.py" else triplet_args
    args = make(prepared, tmp_path / "out", export)
    code, err = run_main(script, [*args, *extra])
    assert code == 1, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert f"the export {export} holds another model" in err
    for word in words:
        assert word in err, err
    assert "n_mels" not in err  # the same in both


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--init_pretrained=null"], ["init_from: pretrained needs"]),
        (["--init_from=scratch"], ["init_pretrained is set", "scratch"]),
        (["--init_from=softmax"], ["init_from must be one of"]),
    ],
)
def test_init_option_mistakes_are_one_line(
    prepared, export, tmp_path, extra, words
):
    args = softmax_args(prepared, tmp_path / "out", export)
    code, err = run_main("train_softmax.py", [*args, *extra])
    assert code == 1, err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for word in words:
        assert word in err, err


def test_missing_export_is_one_line(prepared, tmp_path):
    args = triplet_args(prepared, tmp_path / "out", tmp_path / "nowhere")
    code, err = run_main("train_triplet.py", [*args, "--number_of_epochs=1"])
    assert code == 1, err
    assert err.count("\n") == 1 and "model folder not found" in err


def test_init_from_pretrained_copies_normalizer_statistics(tmp_path):
    """A global normalizer's running statistics come with the weights."""
    norm = InputNormalization(norm_type="global")
    norm.train()
    norm(torch.randn(3, 50, 24) * 2 + 1, torch.ones(3), epoch=0)
    folder = export_pretrained(
        tmp_path / "pretrained",
        compute_features=Features(n_mels=24),
        mean_var_norm=norm,
        embedding_model=ResCNN(**MODEL),
        threshold=0.1,
        card={},
    )
    fresh = {
        "compute_features": Features(n_mels=24),
        "mean_var_norm": InputNormalization(norm_type="global"),
        "embedding_model": ResCNN(**MODEL),
    }
    config = init_from_pretrained(folder, fresh)
    assert config["feature_norm"] == "global"
    torch.testing.assert_close(fresh["mean_var_norm"].glob_mean, norm.glob_mean)
    assert fresh["mean_var_norm"].count == norm.count
    sentence = {
        **fresh,
        "mean_var_norm": InputNormalization(norm_type="sentence"),
    }
    assert model_differences(fresh, sentence) == [
        "feature_norm 'global' (YAML: 'sentence')"
    ]


def test_lobe_options_are_compared_with_older_exports(tmp_path):
    """An export made before se_reduction existed (no such key in its
    config.json) holds the plain blocks: a YAML with squeeze-excitation
    or attentive pooling is another model."""
    import json

    from deep_speaker_sb.errors import ConfigError

    folder = export_pretrained(
        tmp_path / "pretrained",
        compute_features=Features(n_mels=24),
        mean_var_norm=InputNormalization(norm_type="sentence"),
        embedding_model=ResCNN(**MODEL),
        threshold=0.1,
        card={},
        onnx=False,
    )
    config = json.loads((folder / "config.json").read_text())
    del config["model"]["se_reduction"]
    (folder / "config.json").write_text(json.dumps(config))

    def yaml_modules(**options):
        return {
            "compute_features": Features(n_mels=24),
            "mean_var_norm": InputNormalization(norm_type="sentence"),
            "embedding_model": ResCNN(**MODEL, **options),
        }

    init_from_pretrained(folder, yaml_modules())  # the same model: loads
    with pytest.raises(ConfigError, match=r"se_reduction 0 \(YAML: 8\)"):
        init_from_pretrained(folder, yaml_modules(se_reduction=8))
    assert model_differences(
        {"embedding_model": ResCNN(**MODEL)},
        {"embedding_model": ResCNN(**MODEL, pooling="attentive_stats")},
    ) == ["pooling 'mean' (YAML: 'attentive_stats')"]
