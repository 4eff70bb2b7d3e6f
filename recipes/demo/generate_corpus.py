#!/usr/bin/env python3
"""Writes the synthetic demo corpus (VIVOS layout) into a folder.

Usage::

    python recipes/demo/generate_corpus.py --out demo_run/corpus \\
        --n_train_speakers 30 --n_test_speakers 10 --utts_per_speaker 30

A thin command line over
:func:`deep_speaker_sb.data.synthetic.generate_corpus`: the same options
give the same bytes, and a second run with them does nothing.
"""

from __future__ import annotations

import argparse
import os
import sys

from deep_speaker_sb.cli import run_cli
from deep_speaker_sb.data.synthetic import generate_corpus
from deep_speaker_sb.utils import printable


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line options (every one has a default but ``--out``)."""
    parser = argparse.ArgumentParser(
        description="Write a synthetic speaker corpus in the VIVOS layout."
    )
    parser.add_argument("--out", required=True, help="corpus root folder")
    # Both spellings: data_prep.py and SpeechBrain use underscores.
    options = [
        ("n-train-speakers", 30, "training speakers VIVOSSPK01.."),
        ("n-test-speakers", 10, "unseen test speakers VIVOSDEV01.."),
        ("utts-per-speaker", 20, "utterances of 2-5 s per speaker"),
        ("seed", 0, "corpus seed"),
        ("sample-rate", 16000, "sample rate of the WAVs in Hz, as VIVOS"),
        (
            "num-workers",
            min(2, os.cpu_count() or 1),
            "processes (the corpus does not depend on it)",
        ),
    ]
    for name, default, text in options:
        flags = dict.fromkeys([f"--{name}", f"--{name.replace('-', '_')}"])
        parser.add_argument(
            *flags,
            type=int,
            default=default,
            help=f"{text} (default: {default})",
        )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Parses the options, writes the corpus and says where it is."""
    args = parse_args(argv)
    root = generate_corpus(
        args.out,
        n_train_speakers=args.n_train_speakers,
        n_test_speakers=args.n_test_speakers,
        utts_per_speaker=args.utts_per_speaker,
        seed=args.seed,
        sample_rate=args.sample_rate,
        num_workers=args.num_workers,
    )
    n_wavs = sum(1 for _ in root.glob("*/waves/*/*.wav"))
    print(
        f"Synthetic VIVOS-layout corpus in {printable(root)}: {n_wavs} wav "
        "files "
        f"({args.n_train_speakers} train + {args.n_test_speakers} test "
        f"speakers x {args.utts_per_speaker} utterances)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
