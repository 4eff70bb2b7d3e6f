"""Throughput of the VIVOS preparation: seconds of audio per wall second.

Generates a synthetic corpus in the VIVOS layout (16 kHz, at least
``--min_minutes`` of audio) into a temporary folder, then times
``prepare_vivos`` on it with 1 and with 2 worker processes, each into a
fresh save folder (no cache reuse; corpus generation is not timed).
Prints one JSON line.

Usage::

    python bench/prep_throughput.py [--min_minutes 30] [--workers 1 2]

VIVOS holds about 15 h of audio; preparing it in under 2 minutes on two
cores needs a real-time factor of 450 or more.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import soundfile as sf

from deep_speaker_sb.data.synthetic import generate_corpus
from deep_speaker_sb.data.vivos import prepare_vivos

VIVOS_HOURS = 15.0


def corpus_seconds(root: Path) -> float:
    """Total duration of the WAVs under ``root``."""
    return sum(sf.info(str(p)).duration for p in root.rglob("*.wav"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--min_minutes",
        type=float,
        default=30.0,
        help="least audio in the generated corpus (default: 30)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="worker counts to time (default: 1 2)",
    )
    parser.add_argument(
        "--keep",
        default=None,
        help="folder to generate the corpus in and keep (default: temp)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        n_train, n_test, utts = 30, 10, 16
        while True:
            corpus = generate_corpus(
                work / f"vivos_{n_train}_{n_test}_{utts}",
                n_train_speakers=n_train,
                n_test_speakers=n_test,
                utts_per_speaker=utts,
                seed=0,
                num_workers=min(2, os.cpu_count() or 1),
            )
            audio_s = corpus_seconds(corpus)
            if audio_s >= 60 * args.min_minutes:
                break
            utts = int(utts * 60 * args.min_minutes / audio_s) + 1
        result = {
            "corpus_minutes": round(audio_s / 60, 1),
            "utterances": sum(1 for _ in corpus.rglob("*.wav")),
            "cpu_count": os.cpu_count(),
        }
        for workers in args.workers:
            save = work / f"prep_w{workers}"
            shutil.rmtree(save, ignore_errors=True)  # time a full run
            t0 = time.perf_counter()
            prepare_vivos(corpus, save, num_workers=workers)
            wall = time.perf_counter() - t0
            rtf = audio_s / wall
            result[f"workers_{workers}"] = {
                "seconds": round(wall, 2),
                "audio_s_per_s": round(rtf, 1),
                "vivos_15h_estimate_s": round(VIVOS_HOURS * 3600 / rtf, 1),
            }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
