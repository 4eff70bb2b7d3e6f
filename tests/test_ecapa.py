"""The ECAPA-TDNN peer (issue #18): the lobe and its softmax stage.

A tiny ECAPA-TDNN takes the ResCNN's place in ``hparams/softmax.yaml``
(``bench/accuracy.py``'s swap), trains on the shared tiny corpus with the
AAM loss, and its best checkpoint embeds and scores the test trials the
way ``verify.py`` does.
"""

from __future__ import annotations

import math
import re

import torch
from hyperpyyaml import load_hyperpyyaml

from deep_speaker_sb.dataio import read_manifest, utterances
from deep_speaker_sb.lobes.ecapa import SMALL_CHANNELS, EcapaTDNN
from deep_speaker_sb.lobes.rescnn import ResCNN
from tests.conftest import load_script, run_script

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
