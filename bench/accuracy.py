#!/usr/bin/env python3
"""Accuracy of the recipe's variants on a prepared benchmark corpus.

Runs the whole chain (softmax pre-training -> triplet training ->
``verify.py`` on the test trials) once per named variant, at the CPU
training budget of the README, and prints one JSON line per variant: test
EER, minDCF(0.01), and the training minutes.  With ``--voices`` (the
``voices.json`` of ``bench/tts_corpus.py``) the EER is also given over the
trials between same-family and between cross-family test voices.

Usage::

    python bench/accuracy.py --prep bench_data/tts8k \\
        --voices bench_data/tts_corpus/voices.json --out bench_data/accuracy
    python bench/accuracy.py ... --variants mfcc,base,aam

Variants (``--variants``, default all):

- ``mfcc``: the plain baseline, mean MFCC + cosine (no training);
- ``base``: the CPU-budget recipe; reported twice, as ``softmax`` (the
  softmax-only embeddings, ``pretrained_init/``) and ``softmax+triplet``
  (every other variant too, as ``<variant>, softmax`` and so on);
- ``augment``: ``base`` with on-the-fly augmentation in both stages;
- ``aam``: ``base`` with additive angular margin pre-training;
- ``stats``: ``base`` with mean + standard deviation pooling;
- ``all``: ``base`` with the three (augment, aam, stats);
- ``nonspeech``: ``base`` with ``--nonspeech_weight 1.0`` in pre-training;
- ``augment_nonspeech``: ``augment`` with ``--nonspeech_weight 1.0``.
- ``augment_seed2``: ``augment`` with another seed (``--seed 2``, both
  stages), for the seed-to-seed spread.

Every run lives in ``<out>/<variant>/`` and is resumed, not redone, when
the command is run again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.baseline_eer import mean_mfcc_vectors  # noqa: E402
from deep_speaker_sb.dataio import read_manifest, utterances  # noqa: E402
from deep_speaker_sb.scoring import (  # noqa: E402
    read_scores,
    read_trials,
    score_trials,
    verification_metrics,
)
from deep_speaker_sb.utils import write_json  # noqa: E402

#: The CPU training budget (README): model width, crops and epochs that
#: train prep -> softmax -> triplet on the benchmark corpus on 2 CPU cores.
MODEL = [
    "--channels", "[16, 32, 64, 128]",
    "--blocks_per_stage", "1",
    "--emb_dim", "128",
    "--n_mels", "40",
]  # fmt: skip
SOFTMAX = [
    "--number_of_epochs", "12",
    "--batch_size", "32",
    "--sentence_len", "2.0",
    "--lr", "0.003",
    "--lr_final", "0.0003",
]  # fmt: skip
TRIPLET = [
    "--number_of_epochs", "10",
    "--speakers_per_batch", "16",
    "--n_per_speaker", "4",
    "--sentence_len", "2.0",
    "--lr", "0.001",
    "--lr_final", "0.0001",
]  # fmt: skip
COMMON = ["--num_workers", "0", "--device", "cpu", "--noprogressbar"]

#: Variant -> (extra options of both stages, extra softmax-only options).
#: Each differs from ``base`` in one thing, but ``all``.
NO_AUGMENT = ["--augment", "False"]
AAM = ["--pretrain_loss", "aam"]
VARIANTS: dict[str, tuple[list[str], list[str]]] = {
    "base": (NO_AUGMENT, []),
    "augment": (["--augment", "True"], []),
    "aam": (NO_AUGMENT, AAM),
    "stats": ([*NO_AUGMENT, "--pooling", "stats"], []),
    # the three together
    "all": (["--augment", "True", "--pooling", "stats"], AAM),
    # generated non-speech pushed away from the speakers (issue #10)
    "nonspeech": (NO_AUGMENT, ["--nonspeech_weight", "1.0"]),
    "augment_nonspeech": (["--augment", "True"], ["--nonspeech_weight", "1.0"]),
    "augment_seed2": (["--augment", "True", "--seed", "2"], []),
}


def _run(script: str, args: list[str], log: Path) -> float:
    """Runs a recipe script; returns its wall minutes (0 if it failed)."""
    start = time.perf_counter()
    with open(log, "a", encoding="utf-8") as f:
        proc = subprocess.run(
            [sys.executable, str(ROOT / script), *map(str, args)],
            cwd=ROOT,
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    if proc.returncode != 0:
        raise SystemExit(f"error: {script} failed, see {log}")
    return (time.perf_counter() - start) / 60


def timed(folder: Path, name: str, script: str, args: list[str]) -> float:
    """Runs ``script`` once; its minutes are kept in ``timing.json``."""
    timing_file = folder / "timing.json"
    timing = (
        json.loads(timing_file.read_text()) if timing_file.is_file() else {}
    )
    if name not in timing:
        timing[name] = _run(script, args, folder / f"{name}.log")
        write_json(timing_file, timing)
    return timing[name]


def _family_eers(
    trials: list[tuple[int, str, str]],
    scores: torch.Tensor,
    utt2family: dict[str, str],
) -> dict[str, float]:
    """EER over the trials whose two utterances are of one test family."""
    out = {}
    for family in sorted(set(utt2family.values())):
        keep = [
            i
            for i, (_, a, b) in enumerate(trials)
            if utt2family.get(a) == family == utt2family.get(b)
        ]
        labels = [trials[i][0] for i in keep]
        if 0 < sum(labels) < len(labels):
            metrics = verification_metrics(labels, scores[keep])
            out[f"eer_{family}"] = round(metrics["eer"], 4)
            out[f"n_trials_{family}"] = len(keep)
    return out


def _report(
    variant: str,
    trials: list[tuple[int, str, str]],
    scores: torch.Tensor,
    minutes: float,
    utt2family: dict[str, str],
) -> dict:
    """One JSON row: the metrics of scored trials, overall and by family."""
    metrics = verification_metrics([t[0] for t in trials], scores)
    return {
        "variant": variant,
        "eer": round(metrics["eer"], 4),
        "min_dcf_0.01": round(metrics["min_dcf_0.01"], 4),
        "n_trials": len(trials),
        **_family_eers(trials, scores, utt2family),
        "train_minutes": round(minutes, 1),
    }


def run_variant(
    variant: str, prep: Path, out: Path, utt2family: dict[str, str]
) -> list[dict]:
    """Trains and scores one variant; returns its JSON rows."""
    both, softmax_only = VARIANTS[variant]
    folder = out / variant
    folder.mkdir(parents=True, exist_ok=True)
    softmax_min = timed(
        folder,
        "softmax",
        "train_softmax.py",
        [
            "hparams/softmax.yaml",
            "--data_folder", prep,
            "--prep_folder", prep,
            "--skip_prep", "True",
            "--output_folder", folder / "softmax",
            *MODEL, *SOFTMAX, *COMMON, *both, *softmax_only,
        ],
    )  # fmt: skip
    triplet_min = timed(
        folder,
        "triplet",
        "train_triplet.py",
        [
            "hparams/triplet.yaml",
            "--prep_folder", prep,
            "--softmax_ckpt_folder", folder / "softmax" / "save",
            "--output_folder", folder / "triplet",
            *MODEL, *TRIPLET, *COMMON, *both,
        ],
    )  # fmt: skip
    rows = []
    exports = [("softmax", "pretrained_init", softmax_min)]
    exports.append(("softmax+triplet", "pretrained", softmax_min + triplet_min))
    for name, export, minutes in exports:
        verify_out = folder / f"verify_{export}"
        if not (verify_out / "scores.txt").is_file():
            _run(
                "verify.py",
                [
                    "--model", folder / "triplet" / export,
                    "--csv", prep / "test.csv",
                    "--out", verify_out,
                ],
                folder / "verify.log",
            )  # fmt: skip
        label = name if variant == "base" else f"{variant}, {name}"
        trials, scores = read_scores(verify_out / "scores.txt")
        rows.append(_report(label, trials, scores, minutes, utt2family))
    return rows


def mfcc_row(prep: Path, utt2family: dict[str, str]) -> dict:
    """The mean-MFCC + cosine baseline on the same test trials (the mean
    vector of the test utterances subtracted first)."""
    trials = read_trials(prep / "trials.txt")
    utts = utterances(read_manifest(prep / "test.csv"))
    ids = sorted({u for _, a, b in trials for u in (a, b)})
    vectors = mean_mfcc_vectors([Path(utts[u].wav) for u in ids])
    vectors = torch.from_numpy(vectors - vectors.mean(0))
    scores = score_trials(trials, dict(zip(ids, vectors, strict=True)))
    return _report("mfcc", trials, scores, 0.0, utt2family)


def _utt2family(voices: Path | None, prep: Path) -> dict[str, str]:
    if voices is None:
        return {}
    table = json.loads(voices.read_text())
    spk2family = {
        spk: info["test"]
        for spk, info in table.items()
        if info.get("test") in ("same", "cross")
    }
    utts = utterances(read_manifest(prep / "test.csv"))
    return {
        u.utt_id: spk2family[u.spk_id]
        for u in utts.values()
        if u.spk_id in spk2family
    }


def main() -> None:
    """Parses the options and prints one JSON line per variant."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prep", type=Path, required=True, help="prepared data")
    p.add_argument("--voices", type=Path, help="voices.json of the corpus")
    p.add_argument("--out", type=Path, required=True, help="runs go here")
    p.add_argument(
        "--variants",
        default="mfcc," + ",".join(VARIANTS),
        help="comma-separated: mfcc and/or " + ", ".join(VARIANTS),
    )
    args = p.parse_args()
    utt2family = _utt2family(args.voices, args.prep)
    for variant in args.variants.split(","):
        if variant == "mfcc":
            print(json.dumps(mfcc_row(args.prep, utt2family)), flush=True)
            continue
        if variant not in VARIANTS:
            raise SystemExit(f"error: unknown variant {variant!r}")
        for row in run_variant(variant, args.prep, args.out, utt2family):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
