"""How much the triplet stage reads from shards: mixed vs speaker-grouped.

The triplet stage's P x K batches come from a speaker buffer
(:class:`deep_speaker_sb.data.shards.SpeakerShardBatches`).  From the
mixed ``train`` shards a speaker gives K segments only once the buffer
holds about K of every speaker; segments of speakers that cannot fill K
are dropped.  ``train_by_speaker`` (``data_prep.py --speaker_shards``)
keeps each speaker's segments together.  This script writes both layouts
of a prepared folder into a temporary folder and, for each buffer size,
counts the segments read to make one epoch of batches (the YAML's P,
``speakers_per_batch``, and K, ``n_per_speaker``; one rank, one worker)
against the segments the batches use.  One JSON
line per layout and buffer size.

``--speaker_size N`` emulates a corpus of many speakers (VoxCeleb2 has
5,994) with the benchmark's 60: each speaker's segments are relabelled
as speakers of about N segments each (``spk#0``, ``spk#1``, ...: equal
parts in manifest order).

Usage::

    python bench/triplet_shards.py --prep_folder bench_data/tts8k \\
        [--shard_size 500] [--buffers 128 512 2000]
        [--speakers_per_batch 16] [--n_per_speaker 4] [--speaker_run 8]
        [--speaker_size 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deep_speaker_sb.data import shards  # noqa: E402
from deep_speaker_sb.dataio import read_manifest, write_manifest  # noqa: E402
from deep_speaker_sb.errors import UserError  # noqa: E402
from deep_speaker_sb.renames import add_renamed_option  # noqa: E402


def measure(
    folder: Path, p: int, k: int, buffer: int, batches: int
) -> dict[str, float | int | str]:
    """Segments read for ``batches`` P x K batches from ``folder``."""
    reads = 0
    real = shards.iter_shard

    def counting(path):
        nonlocal reads
        for example in real(path):
            reads += 1
            yield example

    shards.iter_shard = counting
    start = time.perf_counter()
    try:
        data = shards.SpeakerShardBatches(
            folder, p, k, num_batches=batches, buffer_size=buffer,
            rank=0, world_size=1,
        )  # fmt: skip
        made = sum(1 for _ in data)
        outcome = "ok"
    except UserError as exc:
        made, outcome = 0, f"error: {exc}"
    finally:
        shards.iter_shard = real
    used = made * p * k
    return {
        "batches": made,
        "segments_used": used,
        "segments_read": reads,
        "read_per_used": round(reads / used, 2) if used else None,
        "seconds": round(time.perf_counter() - start, 1),
        "outcome": outcome,
    }


def main() -> None:
    """Writes both layouts, then one JSON line per layout and buffer."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_renamed_option(
        ap,
        "--prep_folder",
        "--prep",
        type=Path,
        default=Path("bench_data/tts8k"),
    )
    ap.add_argument("--shard_size", type=int, default=500)
    ap.add_argument("--buffers", type=int, nargs="+", default=[128, 512, 2000])
    add_renamed_option(ap, "--speakers_per_batch", "--P", type=int, default=16)
    add_renamed_option(ap, "--n_per_speaker", "--K", type=int, default=4)
    ap.add_argument("--speaker_run", type=int, default=8)
    ap.add_argument("--speaker_size", type=int, default=0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="triplet_shards_"))
    try:
        rows = read_manifest(args.prep_folder / "train.csv")  # absolute paths
        if args.speaker_size > 0:  # equal parts of about speaker_size
            total = Counter(row.spk_id for row in rows)
            seen: Counter = Counter()
            for i, row in enumerate(rows):
                n, count = seen[row.spk_id], total[row.spk_id]
                seen[row.spk_id] += 1
                part = n * max(1, count // args.speaker_size) // count
                rows[i] = dataclasses.replace(
                    row, spk_id=f"{row.spk_id}#{part}"
                )
        write_manifest(tmp / "train.csv", rows)
        info = shards.write_shards(
            tmp,
            shard_size=args.shard_size,
            splits=["train", shards.SPEAKER_SPLIT],
            speaker_run=args.speaker_run,
        )
        segments = info["train"]["segments"]
        batches = max(
            1, segments // (args.speakers_per_batch * args.n_per_speaker)
        )
        for split in ("train", shards.SPEAKER_SPLIT):
            for buffer in args.buffers:
                row = measure(
                    shards.shard_folder(tmp, split),
                    args.speakers_per_batch,
                    args.n_per_speaker,
                    buffer,
                    batches,
                )
                row = {
                    "layout": split,
                    "buffer": buffer,
                    "P": args.speakers_per_batch,
                    "K": args.n_per_speaker,
                    "speakers": info["train"]["speakers"],
                    "segments": segments,
                    **row,
                }
                print(json.dumps(row), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
