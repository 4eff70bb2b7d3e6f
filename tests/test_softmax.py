"""End-to-end tests of softmax pre-training (train_softmax.py), like a user.

A narrow ResCNN trains on the tiny shared corpus; every run starts
``train_softmax.py`` in a subprocess (``torchrun`` for DDP), as a user
would.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from speechbrain.dataio.encoder import CategoricalEncoder

from deep_speaker_sb.lobes.rescnn import ResCNN
from tests.conftest import (
    HANG_TIMEOUT_S,
    ROOT,
    SCRIPT_ENV,
    log_epochs,
    narrow_softmax_args,
    run_script,
)


def _checkpoints(out: Path) -> list[Path]:
    return sorted((out / "save").glob("CKPT+*"))


def _launch(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Runs train_softmax.py as a user would."""
    return run_script("train_softmax.py", *args, cwd=cwd)


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Runs train_softmax.py as a user would; checks it succeeded."""
    proc = _launch(args, cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_train_then_resume(tiny_corpus, tmp_path):
    """1 epoch, then the same command with 2 epochs resumes at epoch 2."""
    out = tmp_path / "out"
    prep = tmp_path / "prep"  # this run prepares its own copy of the data
    first = _run(
        narrow_softmax_args(tiny_corpus, prep, out, "--number_of_epochs", "1"),
        tmp_path,
    )
    assert (prep / "train.csv").is_file()
    assert "best validation accuracy" in first.stdout
    assert [r["epoch"] for r in log_epochs(out / "train_log.txt")] == [1]

    _run(
        narrow_softmax_args(tiny_corpus, prep, out, "--number_of_epochs", "2"),
        tmp_path,
    )  # same data options: preparation is skipped, training resumes
    epochs = log_epochs(out / "train_log.txt")
    assert [r["epoch"] for r in epochs] == [1, 2]  # epoch 1 not redone
    assert epochs[1]["train_loss"] < epochs[0]["train_loss"]
    log = (out / "log.txt").read_text()
    assert log.count("Going into epoch 1") == 1
    assert log.count("Going into epoch 2") == 1

    labels = CategoricalEncoder()
    labels.load(out / "save" / "label_encoder.txt")
    assert len(labels) == 4  # the 4 training speakers
    assert (out / "hyperparams.yaml").is_file()
    ckpts = _checkpoints(out)
    assert ckpts and (ckpts[-1] / "embedding_model.ckpt").is_file()
    model = ResCNN(channels=(8, 16, 32, 64), emb_dim=32)
    state = torch.load(ckpts[-1] / "embedding_model.ckpt", map_location="cpu")
    model.load_state_dict(state)


def test_ddp_two_processes_gloo_cpu(tiny_corpus, tiny_prepared, tmp_path):
    """torchrun --nproc_per_node=2 with gloo on CPU trains one model."""
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run",
        "--standalone", "--nproc_per_node=2",
        str(ROOT / "train_softmax.py"),
        *narrow_softmax_args(tiny_corpus, tiny_prepared, out),
        "--skip_prep", "True",
        "--number_of_epochs", "1",
        "--distributed_backend", "gloo",
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=SCRIPT_ENV, capture_output=True, text=True,
        timeout=HANG_TIMEOUT_S,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("best validation accuracy") == 1  # rank 0 only
    assert [r["epoch"] for r in log_epochs(out / "train_log.txt")] == [1]
    ckpts = _checkpoints(out)
    assert len(ckpts) == 1
    state = torch.load(ckpts[0] / "embedding_model.ckpt", map_location="cpu")
    assert not any(k.startswith("module.") for k in state)
    ResCNN(channels=(8, 16, 32, 64), emb_dim=32).load_state_dict(state)


def _copy_prepared(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _run_expecting_error(args: list[str], cwd: Path) -> str:
    """Runs the script as a user would; returns its one ``error:`` line."""
    proc = _launch(args, cwd)
    errors = [x for x in proc.stderr.splitlines() if x.startswith("error: ")]
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    return errors[0]


def test_missing_wav_is_one_error_line(tiny_corpus, tiny_prepared, tmp_path):
    prep = _copy_prepared(tiny_prepared, tmp_path / "prep")
    with open(prep / "train.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    gone = rows[0]["wav"].replace("{data_root}", str(prep))
    os.remove(gone)
    msg = _run_expecting_error(
        narrow_softmax_args(
            tiny_corpus, prep, tmp_path / "out", "--skip_prep", "True"
        ),
        tmp_path,
    )
    assert gone in msg and "data_prep" in msg
    assert not (tmp_path / "out" / "save").exists() or not _checkpoints(
        tmp_path / "out"
    )


def test_unreadable_wav_is_one_error_line(tiny_corpus, tiny_prepared, tmp_path):
    """A manifest row whose WAV is not audio: one line naming the row,
    also when a DataLoader worker process reads it."""
    prep = _copy_prepared(tiny_prepared, tmp_path / "prep")
    with open(prep / "train.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    wav = rows[0]["wav"]
    Path(wav.replace("{data_root}", str(prep))).write_bytes(b"not audio")
    ids = {r["ID"] for r in rows if r["wav"] == wav}
    args = narrow_softmax_args(
        tiny_corpus, prep, tmp_path / "out", "--skip_prep", "True",
        "--augment", "False",  # the babble would read it first
    )  # fmt: skip
    workers = args.index("--num_workers") + 1
    args[workers] = "1"  # a loader worker reads the audio
    msg = _run_expecting_error(args, tmp_path)
    assert "train.csv, row " in msg and "cannot be read" in msg, msg
    assert msg.split("row ")[1].split(")")[0] in ids
    assert wav.replace("{data_root}", str(prep)) in msg
    assert "DataLoader worker" not in msg


def test_empty_manifest_is_one_error_line(tiny_corpus, tiny_prepared, tmp_path):
    prep = _copy_prepared(tiny_prepared, tmp_path / "prep")
    header = (prep / "train.csv").read_text().splitlines()[0]
    (prep / "train.csv").write_text(header + "\n")
    msg = _run_expecting_error(
        narrow_softmax_args(
            tiny_corpus, prep, tmp_path / "out", "--skip_prep", "True"
        ),
        tmp_path,
    )
    assert "train.csv" in msg and "no rows" in msg


def test_unknown_validation_speaker_is_one_error_line(
    tiny_corpus, tiny_prepared, tmp_path
):
    prep = _copy_prepared(tiny_prepared, tmp_path / "prep")
    with open(prep / "train.csv", newline="", encoding="utf-8") as f:
        first_spk = next(csv.DictReader(f))["spk_id"]
    # drop a speaker from train.csv only: its validation rows are unknown
    train = (prep / "train.csv").read_text().splitlines()
    train = [train[0]] + [r for r in train[1:] if f",{first_spk}," not in r]
    (prep / "train.csv").write_text("\n".join(train) + "\n")
    msg = _run_expecting_error(
        narrow_softmax_args(
            tiny_corpus, prep, tmp_path / "out", "--skip_prep", "True"
        ),
        tmp_path,
    )
    assert "validation speakers" in msg and first_spk in msg


@pytest.mark.parametrize("bad", ["nope"])
def test_bad_feature_type_is_one_error_line(
    tiny_corpus, tiny_prepared, tmp_path, bad
):
    msg = _run_expecting_error(
        narrow_softmax_args(
            tiny_corpus,
            tiny_prepared,
            tmp_path / "out",
            "--skip_prep",
            "True",
            "--feature_type",
            bad,
        ),  # fmt: skip
        tmp_path,
    )
    assert "fbank" in msg


def test_nonspeech_rows_join_training_batches_only():
    """nonspeech_weight: generated non-speech rows in training batches,
    scored by the no-speaker loss; validation batches are untouched."""
    import speechbrain as sb
    from speechbrain.dataio.batch import PaddedBatch
    from speechbrain.processing.features import InputNormalization

    from deep_speaker_sb.brains.softmax import SoftmaxBrain, SpeakerClassifier
    from deep_speaker_sb.features import Features
    from deep_speaker_sb.losses import SpeakerSoftmaxLoss

    torch.manual_seed(0)
    modules = {
        "compute_features": Features(n_mels=24),
        "mean_var_norm": InputNormalization(norm_type="sentence"),
        "embedding_model": ResCNN(
            n_mels=24, channels=(4,), emb_dim=8, blocks_per_stage=1
        ),
        "classifier": SpeakerClassifier(8, n_speakers=3),
    }
    hparams = {
        "augment": False,
        "sample_rate": 8000,
        "compute_cost": SpeakerSoftmaxLoss("softmax", scale=16.0),
        "nonspeech_weight": 2.0,
        "nonspeech_per_batch": 3,
    }
    brain = SoftmaxBrain(
        modules=modules, hparams=hparams, run_opts={"device": "cpu"}
    )
    batch = PaddedBatch(
        [
            {
                "sig": torch.rand(8000) - 0.5,
                "spk_id_encoded": torch.tensor([2]),
            },
            {
                "sig": torch.rand(6000) - 0.5,
                "spk_id_encoded": torch.tensor([0]),
            },
        ]
    )
    labels = torch.tensor([2, 0])
    cosines = brain.compute_forward(batch, sb.Stage.TRAIN)
    assert cosines.shape == (2 + 3, 3)
    loss = brain.compute_objectives(cosines, batch, sb.Stage.TRAIN)
    speech = torch.nn.functional.cross_entropy(16.0 * cosines[:2], labels)
    # the no-speaker class: a fixed logit 0 beside the speakers' logits
    extra = torch.log1p(torch.exp(16.0 * cosines[2:]).sum(dim=1)).mean()
    assert float(loss) == pytest.approx(float(speech + 2.0 * extra), rel=1e-5)

    brain.on_stage_start(sb.Stage.VALID)
    cosines = brain.compute_forward(batch, sb.Stage.VALID)
    assert cosines.shape == (2, 3)
    loss = brain.compute_objectives(cosines, batch, sb.Stage.VALID)
    speech = torch.nn.functional.cross_entropy(16.0 * cosines, labels)
    assert float(loss) == pytest.approx(float(speech), rel=1e-5)

    brain.hparams.nonspeech_weight = 0.0  # the default: off
    assert brain.compute_forward(batch, sb.Stage.TRAIN).shape == (2, 3)


def test_speaker_speeds_are_classes_of_their_own_in_training_only():
    """speaker_speeds: a training row played at another speed is scored
    as that speaker's copy (class spk + copy * n_speakers); validation
    rows are never perturbed and their accuracy counts the speakers
    themselves."""
    import speechbrain as sb
    from speechbrain.dataio.batch import PaddedBatch
    from speechbrain.processing.features import InputNormalization

    from deep_speaker_sb.augment import SpeakerSpeeds
    from deep_speaker_sb.brains.softmax import SoftmaxBrain, SpeakerClassifier
    from deep_speaker_sb.features import Features
    from deep_speaker_sb.losses import SpeakerSoftmaxLoss

    torch.manual_seed(0)
    copies = SpeakerSpeeds(8000, speeds=[80, 125])
    modules = {
        "compute_features": Features(n_mels=24),
        "mean_var_norm": InputNormalization(norm_type="sentence"),
        "embedding_model": ResCNN(
            n_mels=24, channels=(4,), emb_dim=8, blocks_per_stage=1
        ),
        "classifier": SpeakerClassifier(8, n_speakers=2 * copies.n_copies),
    }
    hparams = {
        "augment": False,
        "sample_rate": 8000,
        "compute_cost": SpeakerSoftmaxLoss("softmax", scale=16.0),
        "speaker_copies": copies,
    }
    brain = SoftmaxBrain(
        modules=modules, hparams=hparams, run_opts={"device": "cpu"}
    )
    rows = [(torch.rand(8000) - 0.5, 1), (torch.rand(6000) - 0.5, 0)] * 8
    batch = PaddedBatch(
        [{"sig": s, "spk_id_encoded": torch.tensor([k])} for s, k in rows]
    )
    labels = torch.tensor([k for _, k in rows])

    cosines = brain.compute_forward(batch, sb.Stage.TRAIN)
    assert cosines.shape == (16, 6)
    copy = brain.speed_copy
    assert set(copy.tolist()) == {0, 1, 2}  # 16 rows: every copy drawn
    loss = brain.compute_objectives(cosines, batch, sb.Stage.TRAIN)
    expected = torch.nn.functional.cross_entropy(
        16.0 * cosines, labels + 2 * copy
    )
    assert float(loss) == pytest.approx(float(expected), rel=1e-5)

    brain.modules.eval()
    brain.on_stage_start(sb.Stage.VALID)
    cosines = brain.compute_forward(batch, sb.Stage.VALID)
    assert brain.speed_copy is None
    brain.hparams.speaker_copies = SpeakerSpeeds()  # none: the same rows
    assert torch.equal(cosines, brain.compute_forward(batch, sb.Stage.VALID))
    brain.hparams.speaker_copies = copies
    brain.compute_objectives(cosines, batch, sb.Stage.VALID)
    guess = cosines[:, :2].argmax(-1)  # among the 2 speakers themselves
    assert brain.n_correct == int((guess == labels).sum())
    assert brain.n_total == 16


def test_speaker_speeds_multiply_the_classifier(tiny_corpus, tmp_path):
    """train_softmax.py --speaker_speeds "[90, 110]": three classes per
    training speaker in the trained classifier."""
    out = tmp_path / "out"
    prep = tmp_path / "prep"
    _run(
        narrow_softmax_args(
            tiny_corpus,
            prep,
            out,
            "--number_of_epochs",
            "1",
            "--speaker_speeds",
            "[90, 110]",
        ),
        tmp_path,
    )
    (ckpt,) = _checkpoints(out)
    weight = torch.load(ckpt / "classifier.ckpt")["weight"]
    with open(prep / "train.csv", newline="") as f:
        speakers = {r["spk_id"] for r in csv.DictReader(f)}
    assert weight.shape[0] == 3 * len(speakers)
