"""Sharded data (``deep_speaker_sb.data.shards``, ``--format shards``).

The shards must hold exactly the segments of the CSV manifests (ids,
speakers, samples), be written once (skip rule), be shared out by rank
under DDP (every segment once per epoch, the same number of batches on
every rank) and train both stages.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
import webdataset
from speechbrain.dataio.dataio import read_audio

from deep_speaker_sb.data import shards as shards_mod
from deep_speaker_sb.data.shards import (
    SPEAKER_SPLIT,
    ShardDataset,
    SpeakerShardBatches,
    iter_shard,
    make_shard_loader,
    read_shard_list,
    shard_folder,
    write_shards,
)
from deep_speaker_sb.dataio import SegmentRow, resolve_wav, write_manifest
from deep_speaker_sb.errors import ConfigError, DataError
from tests.conftest import HANG_TIMEOUT_S, ROOT, SCRIPT_ENV, run_script


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def prepared(tiny_prepared: Path, tmp_path: Path) -> Path:
    """A private copy of the prepared tiny corpus."""
    return Path(shutil.copytree(tiny_prepared, tmp_path / "prep"))


def test_shards_hold_the_csv_segments(prepared):
    info = write_shards(prepared, shard_size=7)
    for split in ("train", "valid"):
        rows = {r["ID"]: r for r in _csv_rows(prepared / f"{split}.csv")}
        listing = read_shard_list(shard_folder(prepared, split))
        assert info[split]["segments"] == len(rows) == listing.segments
        assert len(listing.shards) == -(-len(rows) // 7)
        assert max(listing.counts) - min(listing.counts) <= 1
        # speakers with their segment counts, in manifest order
        spk = Counter(r["spk_id"] for r in rows.values())
        assert listing.speakers == dict(spk)
        assert list(listing.speakers) == list(
            dict.fromkeys(r["spk_id"] for r in rows.values())
        )
        seen = []
        for shard, count in zip(listing.shards, listing.counts, strict=True):
            examples = list(iter_shard(shard))
            assert len(examples) == count
            for ex in examples:
                row = rows[ex["id"]]
                assert ex["spk_id"] == row["spk_id"]
                assert ex["meta"]["start"] == int(row["start"])
                assert ex["meta"]["words"] == row["words"]
                audio = read_audio(
                    {
                        "file": resolve_wav(row["wav"], prepared),
                        "start": int(row["start"]),
                        "stop": int(row["stop"]),
                    }
                )
                assert torch.equal(ex["sig"], audio)
                seen.append(ex["id"])
        assert sorted(seen) == sorted(rows)
        # the standard WebDataset reader reads them too
        first = list(webdataset.WebDataset(str(listing.shards[0])))
        assert len(first) == listing.counts[0]
        assert {"__key__", "wav", "json"} <= set(first[0])
    assert not (prepared / "shards" / "test").exists()  # test stays CSV


def test_shards_are_written_once(prepared):
    write_shards(prepared, shard_size=10)
    folder = shard_folder(prepared, "train")
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    write_shards(prepared, shard_size=10)  # same options: skipped
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps
    n_rows = len(_csv_rows(prepared / "train.csv"))
    write_shards(prepared, shard_size=n_rows)  # other options: rewritten
    assert sorted(p.name for p in folder.glob("*.tar")) == ["shard-000000.tar"]
    # a changed manifest is sharded again
    lines = (prepared / "train.csv").read_text().splitlines()
    (prepared / "train.csv").write_text("\n".join(lines[:-1]) + "\n")
    write_shards(prepared, shard_size=n_rows)
    assert read_shard_list(folder).segments == n_rows - 1
    # an interrupted run (no saved options) is redone
    (folder / "shard_options.json").unlink()
    write_shards(prepared, shard_size=n_rows)
    assert (folder / "shard_options.json").is_file()
    assert not list(folder.glob(".*.tmp"))


def test_data_prep_format_shards(tiny_corpus, tmp_path):
    save = tmp_path / "prep"
    args = ["--data_folder", tiny_corpus, "--prep_folder", save]
    proc = run_script(
        "data_prep.py", *args, "--format", "shards", "--shard_size", "5",
        "--speaker_shards",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "shards:" in proc.stdout
    listing = json.loads((save / "shards/train/shardlist.json").read_text())
    assert listing["segments"] == len(_csv_rows(save / "train.csv"))
    by_spk = read_shard_list(shard_folder(save, SPEAKER_SPLIT))
    train_ids = {r["ID"] for r in _csv_rows(save / "train.csv")}
    spk_ids = [e["spk_id"] for p in by_spk.shards for e in iter_shard(p)]
    ids = [e["id"] for p in by_spk.shards for e in iter_shard(p)]
    assert sorted(ids) == sorted(train_ids)  # the same segments, grouped:
    assert by_spk.speakers == Counter(spk_ids)
    alone = run_script("data_prep.py", *args, "--speaker_shards")
    assert alone.returncode == 1
    assert alone.stderr.strip() == (
        "error: --speaker_shards needs --format shards"
    )
    bad = run_script("data_prep.py", *args, "--format", "shards",
                     "--shard_size", "0")  # fmt: skip
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip() == "error: --shard_size must be >= 1, got 0"


def _toy_shards(folder: Path, n_segments: int, shard_size: int) -> Path:
    """``n_segments`` 0.1 s segments of 6 speakers, sharded."""
    folder.mkdir()
    soundfile.write(folder / "a.wav", np.zeros(800, "int16"), 8000)
    write_manifest(
        folder / "train.csv",
        [
            SegmentRow(f"u{i:03d}_0", 0.1, "{data_root}/a.wav", 0, 800,
                       f"S{i % 6}")
            for i in range(n_segments)
        ],
    )  # fmt: skip
    write_shards(folder, shard_size=shard_size, splits=["train"])
    return shard_folder(folder, "train")


def test_segment_order_in_speaker_runs():
    # 5 speakers x 20 rows, runs of 8: each speaker gives runs of 8, 8 and
    # 4 rows; runs of one speaker may follow each other, so a block of one
    # speaker is a sum of some of them
    rows = [SegmentRow(f"{s}_{k}", 1.0, "a.wav", 0, 1, f"S{s}")
            for k in range(20) for s in range(5)]  # fmt: skip
    order = shards_mod.segment_order(rows, seed=3, speaker_run=8)
    assert sorted(order.tolist()) == list(range(100))
    spk = [rows[i].spk_id for i in order]
    blocks = Counter()
    start = 0
    for i in range(1, 101):
        if i == 100 or spk[i] != spk[start]:
            assert i - start in (4, 8, 12, 16, 20)
            blocks[spk[start]] += 1
            start = i
    assert sum(blocks.values()) > 5  # not one block per speaker
    mixed = [rows[i].spk_id for i in shards_mod.segment_order(rows, seed=3)]
    assert sum(a != b for a, b in zip(mixed, mixed[1:], strict=False)) > 50


def test_speaker_shards_fill_the_triplet_buffer(tmp_path, monkeypatch):
    # 40 speakers x 4 segments, shards of 8, P = K = 2, a buffer of 8: from
    # mixed shards few speakers ever hold K segments in the buffer, so it
    # reads (and drops) many segments per batch; in the speaker runs every
    # run of the buffer is a speaker ready to give K
    soundfile.write(tmp_path / "a.wav", np.zeros(800, "int16"), 8000)
    write_manifest(
        tmp_path / "train.csv",
        [
            SegmentRow(f"s{s:02d}_{k}", 0.1, "{data_root}/a.wav", 0, 800,
                       f"S{s:02d}")
            for s in range(40) for k in range(4)
        ],
    )  # fmt: skip
    write_shards(tmp_path, shard_size=8, splits=["train", SPEAKER_SPLIT])
    reads = Counter()
    real = shards_mod.iter_shard

    def counting(path):
        for example in real(path):
            reads[Path(path).parent.name] += 1
            yield example

    monkeypatch.setattr(shards_mod, "iter_shard", counting)
    for split in ("train", SPEAKER_SPLIT):
        data = SpeakerShardBatches(shard_folder(tmp_path, split), 2, 2,
                                   num_batches=20, buffer_size=8,
                                   rank=0, world_size=1)  # fmt: skip
        batches = list(data)
        assert len(batches) == 20
        for b in batches:  # valid P x K batches of distinct segments
            assert sorted(Counter(b.spk_id).values()) == [2, 2]
            assert len(set(b.id)) == 4
    # 80 segments used: the grouped shards read about that many
    assert reads[SPEAKER_SPLIT] < 2 * 80 < reads["train"]


def _read_on_rank(rank: int, world: int, init: str, folders: list, out: str):
    torch.distributed.init_process_group(
        "gloo", init_method=init, rank=rank, world_size=world
    )
    try:
        result = {}
        for name, shards in folders:
            for workers in (0, 2):
                data = ShardDataset(shards, 4, seed=3)  # rank from torch.dist
                # fork as under torchrun (a spawned rank would spawn them)
                context = "fork" if workers else None
                loader = make_shard_loader(
                    data, workers, multiprocessing_context=context
                )
                for epoch in (0, 1):
                    data.set_epoch(epoch)
                    ids = [list(b.id) for b in loader]
                    result[f"{name}/{workers}/{epoch}"] = [len(loader), ids]
        with open(f"{out}.{rank}", "w") as f:
            json.dump(result, f)
    finally:
        torch.distributed.destroy_process_group()


def test_two_gloo_ranks_read_their_own_shards(tmp_path):
    """Every segment once per epoch across 2 ranks; equal batch counts."""
    import torch.multiprocessing as mp

    folders = [
        # 4 shards of 6: 12 segments per rank, no padding
        ("even", str(_toy_shards(tmp_path / "even", 24, 6))),
        # 5 shards of 5, 5, 5, 5, 4: the ranks get 3 and 2 shards
        ("uneven", str(_toy_shards(tmp_path / "uneven", 24, 5))),
    ]
    init = f"file://{tmp_path / 'rendezvous'}"
    out = str(tmp_path / "ids")
    mp.spawn(_read_on_rank, args=(2, init, folders, out), nprocs=2, join=True)
    ranks = [json.loads(Path(f"{out}.{r}").read_text()) for r in (0, 1)]
    everything = [f"u{i:03d}_0" for i in range(24)]
    for run in ranks[0]:
        batches = [r[run][1] for r in ranks]
        # the same number of steps on both ranks, as len(loader) says
        assert len(batches[0]) == len(batches[1]) == ranks[0][run][0], run
        assert ranks[1][run][0] == ranks[0][run][0]
        seen = [[i for b in rank for i in b] for rank in batches]
        if run.startswith("even/"):
            assert sorted(seen[0] + seen[1]) == everything, run
            # 12 segments per rank in batches of 4, by 1 or 2 workers
            # (each worker ends with its own partial batch)
            assert len(batches[0]) == (3 if "/0/" in run else 4)
            continue
        counts = Counter(seen[0] + seen[1])
        assert sorted(counts) == everything, run
        # only the padded (shorter) rank repeats segments, its own ones
        short = min((0, 1), key=lambda r: len(set(seen[r])))
        assert len(set(seen[1 - short])) == len(seen[1 - short])
        assert {i for i, n in counts.items() if n > 1} <= set(seen[short])
        assert len(set(seen[short])) < len(seen[short])
    # a new epoch deals the shards out differently
    assert ranks[0]["even/0/0"][1] != ranks[0]["even/0/1"][1]


def test_fewer_shards_than_ranks_is_an_error(tmp_path):
    shards = _toy_shards(tmp_path / "data", 6, 6)
    with pytest.raises(ConfigError, match="1 shard.* for 2 ranks"):
        ShardDataset(shards, 2, rank=0, world_size=2)
    with pytest.raises(ConfigError, match="2 P K"):
        SpeakerShardBatches(shards, 2, 2, buffer_size=7)


def test_speaker_batches_from_the_buffer(tmp_path):
    shards = _toy_shards(tmp_path / "data", 60, 10)
    data = SpeakerShardBatches(shards, 3, 4, buffer_size=30, seed=1)
    assert len(data) == 60 // 12
    for workers in (0, 2):
        batches = list(make_shard_loader(data, workers))
        assert len(batches) == len(data)
        for b in batches:
            assert sorted(Counter(b.spk_id).values()) == [4, 4, 4]
            assert len(set(b.id)) == 12  # no segment twice in a batch
    ranked = SpeakerShardBatches(shards, 3, 4, rank=1, world_size=2)
    assert len(ranked) == 60 // 24 and len(list(ranked)) == 2


NARROW = [
    "--channels", "[8, 16]", "--emb_dim", "16", "--blocks_per_stage", "1",
    "--n_mels", "24", "--num_workers", "0", "--device", "cpu",
    "--noprogressbar", "--augment", "False", "--number_of_epochs", "1",
    "--data_format", "shards",
]  # fmt: skip


def test_softmax_trains_from_shards_on_two_gloo_ranks(
    tiny_corpus, prepared, tmp_path
):
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "torch.distributed.run",
        "--standalone", "--nproc_per_node=2",
        str(ROOT / "train_softmax.py"), str(ROOT / "hparams/softmax.yaml"),
        "--data_folder", str(tiny_corpus), "--prep_folder", str(prepared),
        "--output_folder", str(out), "--prep_seed", "1",  # as prepared
        "--shard_size", "8", "--batch_size", "4",
        "--distributed_backend", "gloo", *NARROW,
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=SCRIPT_ENV, capture_output=True, text=True,
        timeout=HANG_TIMEOUT_S,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("best validation accuracy") == 1
    assert (prepared / "shards/train/shardlist.json").is_file()
    assert "epoch: 1" in (out / "train_log.txt").read_text()
    assert list((out / "save").glob("CKPT*/embedding_model.ckpt"))


def test_triplet_trains_from_shards(tiny_corpus, tmp_path):
    from deep_speaker_sb.data.vivos import prepare_vivos

    prepared = tmp_path / "prep"  # two or more valid utterances a speaker
    prepare_vivos(tiny_corpus, prepared, seed=1, valid_ratio=0.34)
    write_shards(prepared, shard_size=8)
    out = tmp_path / "triplet"
    proc = run_script(
        "train_triplet.py", ROOT / "hparams/triplet.yaml",
        "--prep_folder", prepared, "--output_folder", out,
        "--init_from", "scratch", "--speakers_per_batch", "2",
        "--n_per_speaker", "2", "--batches_per_epoch", "2",
        "--shard_buffer", "8", "--sentence_len", "1.0", *NARROW,
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (out / "train_log.txt").read_text()
    assert "epoch: 1" in log and "train loss" in log
    assert (out / "pretrained" / "embedding_model.ckpt").is_file()


def test_missing_shards_is_one_error_line(tiny_corpus, prepared, tmp_path):
    proc = run_script(
        "train_softmax.py", ROOT / "hparams/softmax.yaml",
        "--data_folder", tiny_corpus, "--prep_folder", prepared,
        "--output_folder", tmp_path / "s", "--skip_prep", "True", *NARROW,
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: shard list ")
    assert "data_prep.py --format shards" in last


def test_validation_splits_segments_between_ranks(tmp_path):
    shards = _toy_shards(tmp_path / "data", 13, 5)
    seen = []
    for rank in (0, 1):
        data = ShardDataset(
            shards, 4, shuffle=False, split_by="sample", rank=rank,
            world_size=2,
        )  # fmt: skip
        ids = [i for b in data for i in b.id]
        assert len(data) == -(-len(ids) // 4)
        seen.append(ids)
    assert sorted(seen[0] + seen[1]) == [f"u{i:03d}_0" for i in range(13)]
    assert abs(len(seen[0]) - len(seen[1])) <= 1


def test_a_broken_shard_is_a_data_error(tmp_path):
    shards = _toy_shards(tmp_path / "data", 6, 3)
    (shards / "shard-000001.tar").write_bytes(b"not a tar file")
    with pytest.raises(DataError, match="shard-000001.tar is unreadable"):
        list(ShardDataset(shards, 2))
    # from a loader worker: the same one-line message, no worker traceback
    loader = make_shard_loader(ShardDataset(shards, 2, shuffle=False), 1)
    with pytest.raises(DataError) as caught:
        list(loader)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith("shard ")
    assert "shard-000001.tar is unreadable" in str(caught.value)
