#!/usr/bin/env python3
"""Prepares a corpus for speaker verification (VIVOS at 8 kHz by default).

Usage::

    python data_prep.py --data_folder /path/to/vivos --prep_folder data/vivos8k
    python data_prep.py --corpus voxceleb --data_folder /data/voxceleb \\
        --prep_folder data/vox16k        # also folders, cnceleb, ...

``--corpus`` (default ``vivos``) picks the layout: ``folders`` (one
folder per speaker), ``voxceleb``, ``cnceleb``, ``librispeech``,
``vietnam_celeb``; see recipes/<Corpus>/README.md.

Writes ``wavs/``, ``train.csv``, ``valid.csv``, ``test.csv``,
``trials.txt``, ``skipped.csv`` and ``prep_summary.json`` into the
prepared folder ``--prep_folder`` (see docs/DESIGN.md), and does nothing
when they are already there, were made with the same options and every
cached WAV they name exists.
A full disk or an unwritable prepared folder stops it with one error line.
``--format shards`` also writes the train and valid segments as
WebDataset tar shards (``shards/<split>/``; see README "Sharded data").

Deprecated spellings (issue #20; they go in the next release, with a
warning until then): ``--save_folder`` (``--prep_folder``), ``--seed``
(``--prep_seed``), ``--num_workers`` (``--prep_workers``).
"""

from __future__ import annotations

import argparse
import logging
import sys

from deep_speaker_sb.cli import run_cli
from deep_speaker_sb.data.cnceleb import prepare_cnceleb
from deep_speaker_sb.data.folders import prepare_folders
from deep_speaker_sb.data.librispeech import (
    TEST_SPLITS,
    TRAIN_SPLITS,
    prepare_librispeech,
)
from deep_speaker_sb.data.prep import PrepOptions
from deep_speaker_sb.data.shards import (
    DEFAULT_SHARD_SIZE,
    DEFAULT_SPEAKER_RUN,
    SHARD_SPLITS,
    SPEAKER_SPLIT,
    write_shards,
)
from deep_speaker_sb.data.vietnam_celeb import prepare_vietnam_celeb
from deep_speaker_sb.data.vivos import prepare_vivos
from deep_speaker_sb.data.voxceleb import prepare_voxceleb
from deep_speaker_sb.errors import ConfigError
from deep_speaker_sb.renames import add_renamed_option
from deep_speaker_sb.utils import printable

#: ``--corpus`` -> (its prepare function, its own options).
CORPORA = {
    "vivos": (None, ()),
    "folders": (prepare_folders, ("test_speakers", "test_folder")),
    "voxceleb": (prepare_voxceleb, ("trials",)),
    "cnceleb": (prepare_cnceleb, ("trials", "train_folders")),
    "librispeech": (prepare_librispeech, ("train_splits", "test_splits")),
    "vietnam_celeb": (prepare_vietnam_celeb, ("trials",)),
}
#: Sample rate of the cache when --sample_rate is not given (VIVOS's is
#: PrepOptions's, like every default of the preparation's options).
DEFAULT_RATES = {"vivos": PrepOptions.sample_rate}
OTHER_RATE = 16000


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command-line options (every one has a default but the folders)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--corpus",
        choices=sorted(CORPORA),
        default="vivos",
        help="layout of --data_folder (default: vivos)",
    )
    p.add_argument(
        "--data_folder",
        required=True,
        help="the corpus folder; for VIVOS the folder holding train/waves "
        "and test/waves (required)",
    )
    add_renamed_option(
        p,
        "--prep_folder",
        "--save_folder",
        required=True,
        help="the prepared folder: where the WAV cache, manifests and "
        "reports go (required)",
    )
    p.add_argument(
        "--sample_rate",
        type=int,
        default=None,
        help="sample rate (Hz) of the cached WAVs (default: "
        f"{DEFAULT_RATES['vivos']} for vivos, {OTHER_RATE} for the other "
        "corpora)",
    )
    _corpus_arguments(p)
    options = [
        (
            "--seg_dur",
            float,
            PrepOptions.seg_dur,
            "longest segment of a manifest row (s)",
        ),
        (
            "--min_dur",
            float,
            PrepOptions.min_dur,
            "shortest segment kept (a shorter tail is dropped), and "
            "shortest utterance kept after trimming (s)",
        ),
        (
            "--valid_ratio",
            float,
            PrepOptions.valid_ratio,
            "share of each train speaker's utterances put in valid.csv",
        ),
        (
            "--num_trials",
            int,
            PrepOptions.num_trials,
            "trials in trials.txt, half target (all balanced pairs if "
            "fewer exist)",
        ),
        (
            "--cal_speakers",
            int,
            PrepOptions.cal_speakers,
            "training speakers held out as the calibration split (cal.csv, "
            "cal_trials.txt): the export's score calibration is fitted on "
            "them; at most a fifth of the speakers, none below 3; 0: none",
        ),
        (
            "--prep_seed",
            int,
            PrepOptions.seed,
            "seed of the train/valid split and trials",
        ),
        (
            "--prep_workers",
            int,
            PrepOptions.num_workers,
            "processes converting audio (the outputs do not depend on it)",
        ),
        (
            "--trim_db",
            float,
            PrepOptions.trim_db,
            "silence threshold below the utterance's loudness (dB); "
            "0 disables trimming",
        ),
        (
            "--trim_margin",
            float,
            PrepOptions.trim_margin,
            "seconds kept before and after the speech when trimming",
        ),
    ]
    p.add_argument(
        "--format",
        choices=["csv", "shards"],
        default="csv",
        help="csv: the manifests and WAV cache only; shards: also "
        "WebDataset tar shards of train and valid (default: csv)",
    )
    p.add_argument(
        "--speaker_shards",
        action="store_true",
        help="with --format shards: also write the training segments in "
        "runs of one speaker (shards/train_by_speaker), the triplet stage's "
        "shards for corpora of many speakers",
    )
    options.append(
        (
            "--speaker_run",
            int,
            DEFAULT_SPEAKER_RUN,
            "segments per run of one speaker with --speaker_shards (at least "
            "the triplet stage's n_per_speaker)",
        )
    )
    options.append(
        (
            "--shard_size",
            int,
            DEFAULT_SHARD_SIZE,
            "segments per shard, at most (with --format shards)",
        )
    )
    renamed = {"--prep_seed": "--seed", "--prep_workers": "--num_workers"}
    for flag, kind, default, text in options:
        add_renamed_option(
            p,
            flag,
            renamed.get(flag, ()),
            type=kind,
            default=default,
            help=f"{text} (default: {default})",
        )
    return p.parse_args(argv)


def _corpus_arguments(p: argparse.ArgumentParser) -> None:
    """The options of one corpus (refused with the others)."""
    g = p.add_argument_group("corpus options")
    g.add_argument(
        "--trials",
        help="voxceleb, cnceleb, vietnam_celeb: the official trial list "
        "(default: veri_test2.txt, eval/lists/trials.lst, "
        "vietnam-celeb-e.txt in --data_folder)",
    )
    g.add_argument(
        "--test_speakers",
        help="folders: a file of test speaker ids (one a line), or how "
        "many speakers to draw (with --prep_seed)",
    )
    g.add_argument(
        "--test_folder",
        help="folders: a second folder (same layout) of test speakers",
    )
    g.add_argument(
        "--train_splits",
        help="librispeech: comma-separated training splits (default: "
        f"{','.join(TRAIN_SPLITS)})",
    )
    g.add_argument(
        "--test_splits",
        help="librispeech: comma-separated test splits (default: "
        f"{','.join(TEST_SPLITS)})",
    )
    g.add_argument(
        "--train_folders",
        help="cnceleb: comma-separated more roots with data/<spk>/ "
        "training files (CN-Celeb2)",
    )


def prepare(args: argparse.Namespace) -> dict:
    """Prepares ``args.corpus``; returns the summary."""
    prepare_fn, own = CORPORA[args.corpus]
    given = [
        name
        for name in ("trials", "test_speakers", "test_folder")
        + ("train_splits", "test_splits", "train_folders")
        if getattr(args, name) is not None
    ]
    refused = [name for name in given if name not in own]
    if refused:
        raise ConfigError(
            f"--{refused[0]} is not an option of --corpus {args.corpus}"
            + (f" (its options: --{', --'.join(own)})" if own else "")
        )
    rate = args.sample_rate
    if rate is None:
        rate = DEFAULT_RATES.get(args.corpus, OTHER_RATE)
    options = dict(
        sample_rate=rate,
        seg_dur=args.seg_dur,
        min_dur=args.min_dur,
        valid_ratio=args.valid_ratio,
        num_trials=args.num_trials,
        seed=args.prep_seed,
        cal_speakers=args.cal_speakers,
        num_workers=args.prep_workers,
        trim_db=args.trim_db,
        trim_margin=args.trim_margin,
    )
    if prepare_fn is None:
        return prepare_vivos(args.data_folder, args.prep_folder, **options)
    kwargs = {name: getattr(args, name) for name in given}
    for name in ("train_splits", "test_splits", "train_folders"):
        if name in kwargs:
            kwargs[name] = [x for x in kwargs[name].split(",") if x]
    return prepare_fn(
        args.data_folder, args.prep_folder, PrepOptions(**options), **kwargs
    )


def report(summary: dict) -> str:
    """What the user reads once the preparation is done."""
    lines = [f"prepared {summary['save_folder']}"]
    for split in ("train", "valid", "cal", "test"):
        if split not in summary["speakers"]:  # cal: no held-out speakers
            continue
        lines.append(
            f"  {split:5s}: {summary['speakers'][split]:4d} speakers, "
            f"{summary['utterances'][split]:6d} utterances, "
            f"{summary['segments'][split]:6d} segments, "
            f"{summary['hours_in_segments'][split]:.2f} h"
        )
    lines.append(
        f"  audio: {summary['hours_before_trim']['total']:.2f} h before "
        f"trimming, {summary['hours_after_trim']['total']:.2f} h after"
    )
    conv = summary["converted"]
    lines.append(
        f"  converted: {conv['downmixed']} downmixed to mono, "
        f"{conv['other_sample_rate']} at another sample rate than 16 kHz"
    )
    files = summary["files"]
    lines.append(
        f"  skipped: {summary['skipped']}"
        + (f" (see {files['skipped.csv']})" if summary["skipped"] else "")
    )
    trials = summary["trials"]
    lines.append(
        f"  trials: {trials['target']} target, {trials['nontarget']} "
        f"non-target in {files['trials.txt']}"
    )
    if "official" in trials:
        lines.append(
            f"  official trial list: {trials['official']} trials, "
            f"{trials['dropped']} dropped (a file was skipped)"
        )
    lines.append("manifests:")
    names = ["train.csv", "valid.csv", "test.csv"]
    if "cal" in summary["speakers"]:
        names.insert(2, "cal.csv")
    for name in names:
        lines.append(f"  {files[name]}")
    lines.append(f"summary: {files['prep_summary.json']}")
    return "\n".join(map(printable, lines))  # paths may hold newlines


def report_shards(shards: dict) -> str:
    """What the user reads once the shards are written."""
    lines = ["shards:"]
    for split, info in shards.items():
        lines.append(
            f"  {split:16s}: {info['shards']:4d} shards, "
            f"{info['segments']:6d} segments, {info['speakers']:4d} "
            f"speakers: {info['shard_list']}"
        )
    return "\n".join(map(printable, lines))


def main(argv: list[str] | None = None) -> int:
    """Parses the options, prepares the data and prints the summary."""
    args = parse_args(argv)
    if args.shard_size < 1:  # before the preparation's work
        raise ConfigError(f"--shard_size must be >= 1, got {args.shard_size}")
    if args.speaker_run < 1:
        raise ConfigError(f"--speaker_run must be >= 1, got {args.speaker_run}")
    if args.speaker_shards and args.format != "shards":
        raise ConfigError("--speaker_shards needs --format shards")
    logging.basicConfig(
        level=logging.WARNING, format="%(levelname)s: %(message)s"
    )
    logging.getLogger("deep_speaker_sb").setLevel(logging.INFO)
    summary = prepare(args)
    print(report(summary))
    if args.format == "shards":
        splits = [*SHARD_SPLITS, *[SPEAKER_SPLIT] * args.speaker_shards]
        shards = write_shards(
            args.prep_folder,
            shard_size=args.shard_size,
            seed=args.prep_seed,
            splits=splits,
            speaker_run=args.speaker_run,
        )
        print(report_shards(shards))
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
