"""Inference throughput of the paper-width Deep Speaker model.

Exports an untrained paper-width ResCNN (the ``ResCNN()`` defaults: stages
of 64/128/256/512 channels, 3 residual blocks each, 512-d embeddings, on
64 log-mel bands at 8 kHz) into a temporary folder, loads it back with
``DeepSpeaker.from_hparams`` and times the whole pipeline (features,
sentence normalization, ResCNN) on 3 s utterances at batch sizes 1 and 32,
on the CPU (and on CUDA when present).  Then times cosine scoring of trials
on precomputed embeddings.  Prints one JSON line per measurement.

Usage::

    python bench/inference_throughput.py [--seconds 3] [--batches 1 32]
        [--repeats 5] [--threads N] [--trials 200000]

``rtf`` is processing time over audio time (below 1: faster than real
time); ``x_realtime`` is its inverse.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch
from speechbrain.processing.features import (
    InputNormalization,
)

from deep_speaker_sb.export import export_pretrained
from deep_speaker_sb.features import Features
from deep_speaker_sb.inference import DeepSpeaker
from deep_speaker_sb.lobes.rescnn import ResCNN
from deep_speaker_sb.scoring import score_trials


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_embeddings(
    model: DeepSpeaker, device: str, batch: int, seconds: float, repeats: int
) -> dict:
    """Times ``encode_batch`` on random audio; returns one JSON record."""
    wavs = torch.randn(batch, int(seconds * model.sample_rate)) * 0.1
    wavs = wavs.to(device)
    for _ in range(2):  # warm-up
        model.encode_batch(wavs)
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        model.encode_batch(wavs)
    _sync(device)
    wall = (time.perf_counter() - start) / repeats
    audio = batch * seconds
    return {
        "what": "embeddings",
        "device": device,
        "threads": torch.get_num_threads(),
        "batch": batch,
        "utterance_s": seconds,
        "embeddings_per_s": round(batch / wall, 2),
        "ms_per_batch": round(1000 * wall, 1),
        "rtf": round(wall / audio, 5),
        "x_realtime": round(audio / wall, 1),
    }


def time_scoring(n_trials: int, n_utts: int = 2000, dim: int = 512) -> dict:
    """Times cosine scoring of ``n_trials`` trials on random embeddings."""
    rng = random.Random(0)
    embs = torch.nn.functional.normalize(torch.randn(n_utts, dim), dim=1)
    emb = {f"u{i}": embs[i] for i in range(n_utts)}
    ids = list(emb)
    trials = [
        (rng.randint(0, 1), rng.choice(ids), rng.choice(ids))
        for _ in range(n_trials)
    ]
    start = time.perf_counter()
    scores = score_trials(trials, emb)
    wall = time.perf_counter() - start
    assert len(scores) == n_trials
    return {
        "what": "trial_scoring",
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "trials": n_trials,
        "emb_dim": dim,
        "seconds": round(wall, 3),
        "trials_per_s": round(n_trials / wall),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--trials", type=int, default=200000)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(0)
        model = ResCNN()
        folder = export_pretrained(
            Path(tmp) / "pretrained",
            compute_features=Features(),
            mean_var_norm=InputNormalization(norm_type="sentence"),
            embedding_model=model,
            threshold=0.5,
            card={"data": "none (benchmark)"},
        )
        n_params = sum(p.numel() for p in model.parameters())
        print(
            json.dumps(
                {"what": "model", "params": n_params, "config": model.config}
            )
        )
        for device in devices:
            ds = DeepSpeaker.from_hparams(
                source=folder, run_opts={"device": device}
            )
            for batch in args.batches:
                repeats = (
                    args.repeats if batch < 8 else max(1, args.repeats // 2)
                )
                rec = time_embeddings(ds, device, batch, args.seconds, repeats)
                print(json.dumps(rec), flush=True)
    print(json.dumps(time_scoring(args.trials)), flush=True)


if __name__ == "__main__":
    main()
