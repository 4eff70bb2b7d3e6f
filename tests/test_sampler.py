"""Guarantees of the P x K speaker batch sampler."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from deep_speaker_sb.data.sampler import SpeakerBatchSampler

# 6 speakers with 10, 9, ..., 5 segments and one with 1 segment.
LABELS = [f"spk{s}" for s in range(6) for _ in range(10 - s)] + ["tiny"]


def check_batch(batch, P, K, labels=LABELS):
    assert len(batch) == P * K
    counts = Counter(labels[i] for i in batch)
    assert len(counts) == P and set(counts.values()) == {K}
    for i in batch:  # every anchor has a positive and a negative
        same = [j for j in batch if labels[j] == labels[i]]
        assert len(same) >= 2 and len(same) < len(batch)


@pytest.mark.parametrize("P,K", [(2, 2), (3, 4), (6, 2)])
def test_batches_are_p_by_k_with_positives(P, K):
    sampler = SpeakerBatchSampler(LABELS, P, K, num_batches=25, seed=3)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 25
    for batch in batches:
        check_batch(batch, P, K)


def test_distinct_segments_when_speaker_has_enough():
    sampler = SpeakerBatchSampler(
        LABELS, 3, 5, num_batches=30, small_speakers="skip"
    )
    for batch in sampler:
        assert len(set(batch)) == len(batch)
        assert LABELS.index("tiny") not in batch


def test_pools_cover_each_speaker_before_repeating():
    labels = ["a"] * 4 + ["b"] * 4
    batches = list(SpeakerBatchSampler(labels, 2, 2, num_batches=2))
    # Two batches of 2 x 2 draw all 8 segments exactly once.
    assert sorted(i for b in batches for i in b) == list(range(8))


def test_small_speakers_replace_or_skip():
    labels = ["a"] * 5 + ["b"]
    with pytest.raises(ValueError, match="lower speakers_per_batch"):
        SpeakerBatchSampler(labels, 2, 3, small_speakers="skip")
    sampler = SpeakerBatchSampler(labels, 2, 3, num_batches=4)
    for batch in sampler:
        assert batch.count(5) == 3  # "b" sampled with replacement
    with pytest.raises(ValueError, match="K"):
        SpeakerBatchSampler(labels, 2, 1)
    with pytest.raises(ValueError, match="P"):
        SpeakerBatchSampler(labels, 1, 2)


def test_default_epoch_length_and_reshuffle():
    sampler = SpeakerBatchSampler(LABELS, 2, 3, seed=0)
    assert len(sampler) == len(LABELS) // 6
    first = list(sampler)
    assert list(sampler) == first  # same epoch: same batches
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first
    again = SpeakerBatchSampler(LABELS, 2, 3, seed=0)
    again.set_epoch(1)
    assert list(again) == second  # depends only on seed and epoch


def test_ranks_draw_different_batches():
    world = 3
    per_rank = [
        list(
            SpeakerBatchSampler(
                LABELS, 2, 2, num_batches=8, seed=5, rank=r, world_size=world
            )
        )
        for r in range(world)
    ]
    assert all(len(b) == 8 for b in per_rank)
    for r in range(world):
        for other in range(r + 1, world):
            assert per_rank[r] != per_rank[other]
    # Together the ranks draw what one process would in 3x as many steps.
    single = list(SpeakerBatchSampler(LABELS, 2, 2, num_batches=24, seed=5))
    assert per_rank[1] == single[1::world]
    # Default epoch length is split between the ranks.
    assert len(SpeakerBatchSampler(LABELS, 2, 2, rank=0, world_size=2)) == (
        len(LABELS) // 8
    )
    with pytest.raises(ValueError, match="invalid rank"):
        SpeakerBatchSampler(LABELS, 2, 2, rank=2, world_size=2)


def test_works_as_dataloader_batch_sampler():
    from speechbrain.dataio.dataloader import make_dataloader
    from speechbrain.dataio.dataset import DynamicItemDataset

    data = {f"u{i}": {"spk_id": s, "x": float(i)} for i, s in enumerate(LABELS)}
    dataset = DynamicItemDataset(data, output_keys=["id", "spk_id", "x"])
    labels = [dataset.data[i]["spk_id"] for i in dataset.data_ids]
    sampler = SpeakerBatchSampler(labels, 3, 2, num_batches=4)
    loader = make_dataloader(dataset, batch_sampler=sampler)
    batches = list(loader)
    assert len(batches) == 4
    for batch in batches:
        assert isinstance(batch.x.data, torch.Tensor)
        assert len(batch.spk_id) == 6
        assert set(Counter(batch.spk_id).values()) == {2}


def _draw_on_rank(rank: int, world: int, init: str, out: str) -> None:
    import json

    torch.distributed.init_process_group(
        "gloo", init_method=init, rank=rank, world_size=world
    )
    try:
        sampler = SpeakerBatchSampler(LABELS, 2, 2, num_batches=4, seed=9)
        with open(f"{out}.{rank}", "w") as f:
            json.dump([sampler.rank, sampler.world_size, list(sampler)], f)
    finally:
        torch.distributed.destroy_process_group()


def test_rank_and_world_size_from_torch_distributed(tmp_path):
    import json

    import torch.multiprocessing as mp

    init = f"file://{tmp_path / 'rendezvous'}"
    out = str(tmp_path / "batches")
    mp.spawn(_draw_on_rank, args=(2, init, out), nprocs=2, join=True)
    got = [json.loads((tmp_path / f"batches.{r}").read_text()) for r in (0, 1)]
    assert [g[:2] for g in got] == [[0, 2], [1, 2]]
    assert got[0][2] != got[1][2]
    single = list(SpeakerBatchSampler(LABELS, 2, 2, num_batches=8, seed=9))
    assert got[0][2] == single[0::2] and got[1][2] == single[1::2]
