#!/usr/bin/env python3
"""Adds the ONNX graphs to an existing export folder.

Writes ``embedding_model.onnx`` (fp32) and, with ``--calibration_csv``,
``embedding_model.int8.onnx`` (static int8, calibrated on that manifest's
audio) into the folder, and records them in its ``config.json`` and model
card.  Exports made by ``train_triplet.py`` already hold both; this is for
folders exported before, e.g.::

    python export_onnx.py results/triplet/1986/pretrained \\
        --calibration_csv data/vivos8k/train.csv

The model is rebuilt from the folder's ``config.json`` and weights-only
checkpoints: nothing in the folder runs.  ``--trust_yaml`` loads it
through its ``hyperparams.yaml`` instead (HyperPyYAML builds whatever
objects that file names), for folders you trust that predate
``config.json``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deep_speaker_sb.cli import run_cli
from deep_speaker_sb.export import record_onnx
from deep_speaker_sb.inference import load_parts
from deep_speaker_sb.onnx_export import add_onnx
from deep_speaker_sb.utils import printable


def main(argv: list[str] | None = None) -> int:
    """Parses the command line and adds the ONNX files."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument("folder", help="export folder (.../pretrained)")
    p.add_argument(
        "--calibration_csv",
        help="prepared manifest (train.csv) that calibrates the int8 copy; "
        "without it only the fp32 graph is written",
    )
    p.add_argument(
        "--trust_yaml",
        action="store_true",
        help="load the model by running the folder's hyperparams.yaml "
        "(only for folders you trust; needed for exports without "
        "config.json)",
    )
    args = p.parse_args(argv)
    parts = load_parts(args.folder, args.trust_yaml)
    entry = add_onnx(args.folder, parts, args.calibration_csv)
    record_onnx(args.folder, entry, parts)
    for key in ("fp32", "int8"):
        if entry.get(key):
            print(f"wrote {printable(Path(args.folder) / entry[key])}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
