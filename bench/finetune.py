#!/usr/bin/env python3
"""Adapting a trained model to new speakers (``init_from: pretrained``).

The benchmark corpus's test voices of the synthesizer families never seen
in training (``test: cross`` in ``voices.json``: espeak, festival, flite)
are split in two halves, each family split evenly: the *adaptation*
speakers (their utterances become a small ``train.csv`` / ``valid.csv``,
"a few dozen speakers, a few minutes each") and the *held-out* speakers.
A trained export is fine-tuned on the adaptation speakers with the
triplet stage (``--init_from pretrained``), once per setting, and every
model is scored on the official test trials between held-out speakers
(the new domain, unseen speakers) and between same-family test voices
(the training domain: does the model forget it?).  One JSON line per
model: EER and minDCF(0.01) on both trial sets, and the training minutes.

Usage::

    python bench/finetune.py --prep_folder bench_data/tts8k \\
        --voices bench_data/tts_corpus/voices.json \\
        --model bench_data/accuracy/augment/triplet/pretrained \\
        --out bench_data/finetune
    python bench/finetune.py ... --settings low_lr

Settings (``--settings``, default all): ``low_lr`` (lr 1e-4 -> 1e-5) and
``train_lr`` (lr 1e-3 -> 1e-4, the YAML's, the README's recipe), 5 epochs
each.  Runs resume when the command is run again.  The export must have a
``config.json`` (export it again with ``--export_only True`` if not).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from collections import defaultdict
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.accuracy import (  # noqa: E402
    COMMON,
    MODEL,
    add_prep_folder,
    timed,
)
from deep_speaker_sb.dataio import (  # noqa: E402
    read_manifest,
    utterances,
    write_manifest,
)
from deep_speaker_sb.evaluation import evaluate_trials  # noqa: E402
from deep_speaker_sb.inference import DeepSpeaker  # noqa: E402
from deep_speaker_sb.scoring import read_trials  # noqa: E402

#: Setting -> triplet-stage options of the fine-tune.
SETTINGS = {
    "low_lr": ["--lr", "0.0001", "--lr_final", "0.00001"],
    "train_lr": ["--lr", "0.001", "--lr_final", "0.0001"],
}
TRIPLET = [
    "--number_of_epochs", "5",
    "--speakers_per_batch", "16",
    "--n_per_speaker", "4",
    "--sentence_len", "2.0",
    "--augment", "True",
]  # fmt: skip
#: Utterances per adaptation speaker held out for the validation EER.
VALID_UTTS = 6


def split_speakers(voices: Path, seed: int = 0) -> tuple[list, list, list]:
    """(adaptation, held-out, same-family) test voices."""
    table = json.loads(voices.read_text())
    by_family = defaultdict(list)
    same = []
    for spk, info in sorted(table.items()):
        if info.get("test") == "cross":
            by_family[info["family"]].append(spk)
        elif info.get("test") == "same":
            same.append(spk)
    rng = random.Random(seed)
    adapt, held = [], []
    for family in sorted(by_family):
        spks = sorted(by_family[family])
        rng.shuffle(spks)
        half = (len(spks) + 1) // 2
        adapt += spks[:half]
        held += spks[half:]
    return sorted(adapt), sorted(held), same


def make_adaptation_data(prep: Path, adapt: list[str], out: Path) -> Path:
    """``train.csv`` / ``valid.csv`` of the adaptation speakers' test
    utterances (``VALID_UTTS`` of each to validation), in ``out`` (the
    rows name the prepared corpus's WAVs by absolute path)."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [r for r in read_manifest(prep / "test.csv") if r.spk_id in adapt]
    utts = defaultdict(list)
    for r in rows:
        utts[r.spk_id].append(Path(r.wav).stem)
    valid_utts = {
        u for spk in utts for u in sorted(set(utts[spk]))[:VALID_UTTS]
    }
    train = [r for r in rows if Path(r.wav).stem not in valid_utts]
    valid = [r for r in rows if Path(r.wav).stem in valid_utts]
    write_manifest(out / "train.csv", train)
    write_manifest(out / "valid.csv", valid)
    return out


def score(model_dir: Path, prep: Path, trial_sets: dict) -> dict:
    """EER and minDCF(0.01) of an export on each set of trials."""
    model = DeepSpeaker.from_hparams(
        source=model_dir, run_opts={"device": "cpu"}
    )
    utts = utterances(read_manifest(prep / "test.csv"))
    row = {}
    for name, trials in trial_sets.items():
        needed = {u for _, a, b in trials for u in (a, b)}
        report = evaluate_trials(
            model, trials, {u: utts[u] for u in needed}
        ).report
        row[f"eer_{name}"] = round(report["eer"], 4)
        row[f"min_dcf_0.01_{name}"] = round(report["min_dcf_0.01"], 4)
        row[f"n_trials_{name}"] = len(trials)
    return row


def main() -> None:
    """Parses the options and prints one JSON line per model."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_prep_folder(p)
    p.add_argument("--voices", type=Path, required=True, help="voices.json")
    p.add_argument("--model", type=Path, required=True, help="export folder")
    p.add_argument("--out", type=Path, required=True, help="runs go here")
    p.add_argument("--settings", default=",".join(SETTINGS))
    args = p.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))

    adapt, held, same = split_speakers(args.voices)
    data = make_adaptation_data(
        args.prep_folder, adapt, args.out / "adapt_data"
    )
    spk_of = {
        Path(r.wav).stem: r.spk_id
        for r in read_manifest(args.prep_folder / "test.csv")
    }
    trials = read_trials(args.prep_folder / "trials.txt")
    trial_sets = {
        "held_out": [
            t for t in trials if spk_of[t[1]] in held and spk_of[t[2]] in held
        ],
        "same_family": [
            t for t in trials if spk_of[t[1]] in same and spk_of[t[2]] in same
        ],
    }
    info = {
        "adaptation_speakers": len(adapt),
        "adaptation_minutes": round(
            sum(r.duration for r in read_manifest(data / "train.csv")) / 60, 1
        ),
        "held_out_speakers": len(held),
    }
    before = score(args.model, args.prep_folder, trial_sets)
    print(json.dumps({"model": "before", **info, **before}), flush=True)
    for name in args.settings.split(","):
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        minutes = timed(
            folder,
            "triplet",
            "train_triplet.py",
            [
                "hparams/triplet.yaml",
                "--prep_folder", data,
                "--output_folder", folder / "triplet",
                "--init_from", "pretrained",
                "--init_pretrained", args.model,
                *MODEL, *TRIPLET, *SETTINGS[name], *COMMON,
            ],
        )  # fmt: skip
        row = score(
            folder / "triplet" / "pretrained", args.prep_folder, trial_sets
        )
        row["train_minutes"] = round(minutes, 1)
        print(json.dumps({"model": name, **row}), flush=True)


if __name__ == "__main__":
    main()
