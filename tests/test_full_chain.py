"""The whole recipe as a user runs it, on a tiny corpus and a tiny model.

generate -> data_prep.py -> train_softmax.py (2 epochs) -> train_triplet.py
(from that checkpoint) -> verify.py, each script in a subprocess.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from deep_speaker_sb.dataio import read_manifest, utterances
from deep_speaker_sb.inference import DeepSpeaker
from deep_speaker_sb.scoring import compute_eer, read_trials
from tests.conftest import ROOT, run_script

MODEL = [
    "--channels", "[8, 16]",
    "--blocks_per_stage", "1",
    "--emb_dim", "32",
    "--n_mels", "32",
    "--feature_norm", "global",
    "--num_workers", "0",
    "--device", "cpu",
    "--noprogressbar",
]  # fmt: skip


def _ok(proc) -> str:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def _train_losses(log: Path) -> list[float]:
    """The ``train loss`` of every training epoch of a ``train_log.txt``."""
    found = re.findall(r"train loss: ([\d.e+-]+)", log.read_text())
    return [float(x) for x in found]


@pytest.fixture(scope="module")
def chain(tiny_corpus: Path, tmp_path_factory) -> dict[str, Path]:
    """Runs the five steps once; returns their folders."""
    work = tmp_path_factory.mktemp("chain")
    prep, results = work / "prep", work / "results"
    _ok(
        run_script(
            "data_prep.py",
            "--data_folder", tiny_corpus,
            "--prep_folder", prep,
            "--valid_ratio", "0.34",
            cwd=work,
        )
    )  # fmt: skip
    softmax_out = results / "softmax"
    _ok(
        run_script(
            "train_softmax.py",
            ROOT / "hparams" / "softmax.yaml",
            "--data_folder", tiny_corpus,
            "--prep_folder", prep,
            "--skip_prep", "True",
            "--output_folder", softmax_out,
            "--number_of_epochs", "2",
            "--batch_size", "8",
            "--lr", "0.003",
            "--sentence_len", "2.0",
            *MODEL,
            cwd=work,
        )
    )  # fmt: skip
    triplet_out = results / "triplet"
    triplet_stdout = _ok(
        run_script(
            "train_triplet.py",
            ROOT / "hparams" / "triplet.yaml",
            "--prep_folder", prep,
            "--softmax_ckpt_folder", softmax_out / "save",
            "--output_folder", triplet_out,
            "--number_of_epochs", "4",
            "--speakers_per_batch", "4",
            "--n_per_speaker", "3",
            "--batches_per_epoch", "8",
            "--mining", "random",
            "--margin", "0.3",
            "--lr", "0.003",
            "--lr_final", "0.001",
            "--sentence_len", "2.0",
            *MODEL,
            cwd=work,
        )
    )  # fmt: skip
    verify_out = work / "verify"
    verify_stdout = _ok(
        run_script(
            "verify.py",
            "--model", triplet_out / "pretrained",
            "--csv", prep / "test.csv",
            "--out", verify_out,
            cwd=work,
        )
    )  # fmt: skip
    return {
        "prep": prep,
        "softmax": softmax_out,
        "triplet": triplet_out,
        "verify": verify_out,
        "triplet_stdout": triplet_stdout,
        "verify_stdout": verify_stdout,
    }


def test_softmax_checkpoint_feeds_the_triplet_stage(chain):
    assert len(_train_losses(chain["softmax"] / "train_log.txt")) == 2
    card = (chain["triplet"] / "pretrained" / "model_card.md").read_text()
    assert str(chain["softmax"] / "save") in card
    assert "validation EER before triplet training" in chain["triplet_stdout"]


def test_triplet_loss_falls(chain):
    losses = _train_losses(chain["triplet"] / "train_log.txt")
    assert len(losses) == 4
    assert losses[-1] < losses[0], losses


def test_export_loads_and_scores_like_verify(chain):
    model = DeepSpeaker.from_hparams(
        source=chain["triplet"] / "pretrained", run_opts={"device": "cpu"}
    )
    utts = utterances(read_manifest(chain["prep"] / "test.csv"))
    trials = read_trials(chain["prep"] / "trials.txt")
    needed = sorted({u for _, a, b in trials for u in (a, b)})
    embs = model.encode_files([utts[u].wav for u in needed])
    assert embs.shape == (len(needed), 32)
    assert torch.allclose(embs.norm(dim=1), torch.ones(len(needed)))
    index = {u: i for i, u in enumerate(needed)}
    scores = torch.stack(
        [embs[index[a]] @ embs[index[b]] for _, a, b in trials]
    )
    labels = torch.tensor([t[0] == 1 for t in trials])
    eer, _ = compute_eer(scores[labels], scores[~labels])

    report = json.loads((chain["verify"] / "report.json").read_text())
    assert report["n_trials"] == len(trials)
    assert report["eer"] == pytest.approx(eer, abs=1e-4)
    assert f"EER            {100 * eer:.2f}%" in chain["verify_stdout"]
    lines = (chain["verify"] / "scores.txt").read_text().splitlines()
    assert len(lines) == len(trials)
    written = torch.tensor([float(line.split()[3]) for line in lines])
    assert torch.allclose(written, scores, atol=1e-5)
