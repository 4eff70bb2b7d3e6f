#!/usr/bin/env python3
"""Training throughput (segments per second): the model and the data path.

**Model** (``"kind": "train"``): one training step = Features (fbank at
8 kHz) -> sentence normalization -> ResCNN -> speaker classifier ->
cross-entropy -> backward -> Adam step, on random audio: ``--batch``
crops of ``--seconds`` seconds, in ``--precision fp32`` and/or ``bf16``
(``torch.autocast``, as SpeechBrain's ``--precision bf16`` runs the
forward pass).  Models: the paper-width ResCNN (64-128-256-512, emb 512,
~24 M parameters), the README's CPU-budget model (16-32-64-128, one block
per stage, emb 128, 40 mels) and the narrow demo model (8-16-32-64, emb
64).  Per measurement it prints one JSON line:

- ``segments_per_s``: training throughput;
- ``fwd_gflop_per_segment``: forward FLOPs of one segment, counted with
  ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add = 2 FLOPs);
- ``train_tflop_per_s``: 3 x forward FLOPs x segments/s (backward ~ 2 x
  forward), and ``fraction_of_matmul``: that divided by the measured
  throughput of a large float32 matmul on the same device (the
  ``"kind": "matmul"`` line).

**Data path** (``"kind": "data"``, with ``--prep_folder PREP_FOLDER``): the
softmax stage's training batches (``--batch`` random crops of
``--seconds`` s) as the stage builds them
(:func:`deep_speaker_sb.brains.softmax.dataio_prep`), from the CSV
manifests and cached WAVs and from the shards (``data_prep.py --format
shards``), with ``--workers`` DataLoader workers (default 0-4), through
one epoch (the first batch, which pays for starting the workers, is not
timed).  Then, per model, device and precision, a ``"kind":
"bottleneck"`` line compares the best data rate with the model's rate
and names the slower one.  On CPU the data workers share the cores with
the model, so the data rate there is an upper bound.

Usage:
    python bench/train_throughput.py                 # CPU (+ CUDA if any)
    python bench/train_throughput.py --device cpu --models demo --steps 5
    python bench/train_throughput.py --device cpu --threads 1 \\
        --prep_folder bench_data/tts8k --precision fp32 bf16
    python bench/train_throughput.py --device cuda --precision fp32 bf16 \\
        --models paper cpu_budget --prep_folder data/vivos8k
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from speechbrain.dataio.dataloader import make_dataloader
from speechbrain.processing.features import InputNormalization
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from deep_speaker_sb.brains.softmax import SpeakerClassifier, dataio_prep
from deep_speaker_sb.features import Features
from deep_speaker_sb.lobes.rescnn import ResCNN
from deep_speaker_sb.renames import add_renamed_option

MODELS = {
    "paper": {"channels": (64, 128, 256, 512), "emb_dim": 512, "n_mels": 64},
    # the README's "CPU training budget" model (bench/accuracy.py)
    "cpu_budget": {
        "channels": (16, 32, 64, 128),
        "emb_dim": 128,
        "blocks_per_stage": 1,
        "n_mels": 40,
    },
    # the `make demo` model (README: softmax pre-training on the demo corpus)
    "demo": {
        "channels": (8, 16, 32, 64),
        "emb_dim": 64,
        "blocks_per_stage": 1,
        "n_mels": 64,
    },
}
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}
SAMPLE_RATE = 8000
N_SPEAKERS = 46  # VIVOS training speakers


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matmul_tflops(device: str, n: int, reps: int) -> float:
    """Measured float32 matmul throughput (TFLOP/s) of ``n x n`` matrices."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e12


def build(name: str) -> dict[str, torch.nn.Module]:
    """Features, normalization, ResCNN and classifier of one model."""
    cfg = dict(MODELS[name])
    n_mels = cfg.pop("n_mels")
    return {
        "compute_features": Features("fbank", SAMPLE_RATE, n_mels=n_mels),
        "mean_var_norm": InputNormalization(norm_type="sentence"),
        "embedding_model": ResCNN(n_mels=n_mels, **cfg),
        "classifier": SpeakerClassifier(cfg["emb_dim"], N_SPEAKERS),
    }


def forward(mods: dict[str, torch.nn.Module], wavs, lens) -> torch.Tensor:
    """Cosines with the speakers of a batch (the training forward pass)."""
    feats = mods["mean_var_norm"](mods["compute_features"](wavs), lens)
    return mods["classifier"](mods["embedding_model"](feats, lens))


def autocast(device: str, precision: str):
    """``torch.autocast`` for bf16 (as SpeechBrain's Brain), else nothing."""
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=dtype)


def bench_model(
    name: str,
    device: str,
    batch: int,
    seconds: float,
    steps: int,
    precision: str = "fp32",
) -> dict:
    """Times ``steps`` training steps after one warm-up step."""
    torch.manual_seed(0)
    mods = {k: m.to(device).train() for k, m in build(name).items()}
    params = [p for m in mods.values() for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    wavs = torch.randn(batch, int(seconds * SAMPLE_RATE), device=device)
    lens = torch.ones(batch, device=device)
    spk = torch.randint(0, N_SPEAKERS, (batch,), device=device)

    with FlopCounterMode(display=False) as counter:
        with torch.no_grad():
            forward(mods, wavs[:1], lens[:1])
    fwd_flops = counter.get_total_flops()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with autocast(device, precision):
            cosines = forward(mods, wavs, lens)
            loss = torch.nn.functional.cross_entropy(16.0 * cosines, spk)
        loss.backward()
        opt.step()

    step()  # warm-up
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    elapsed = time.perf_counter() - start
    seg_per_s = batch * steps / elapsed
    return {
        "kind": "train",
        "model": name,
        "device": device,
        "precision": precision,
        "params_m": round(
            sum(p.numel() for p in mods["embedding_model"].parameters()) / 1e6,
            3,
        ),
        "batch": batch,
        "seconds_per_segment": seconds,
        "steps": steps,
        "s_per_step": round(elapsed / steps, 4),
        "segments_per_s": round(seg_per_s, 2),
        "fwd_gflop_per_segment": round(fwd_flops / 1e9, 3),
        "train_tflop_per_s": round(3 * fwd_flops * seg_per_s / 1e12, 4),
    }


def data_loader(
    prep: Path, data_format: str, workers: int, batch: int, seconds: float
) -> DataLoader:
    """The softmax stage's training DataLoader over a prepared folder."""
    hparams = {
        "prep_folder": str(prep),
        "train_annotation": str(prep / "train.csv"),
        "valid_annotation": str(prep / "valid.csv"),
        "train_shards": str(prep / "shards/train/shardlist.json"),
        "valid_shards": str(prep / "shards/valid/shardlist.json"),
        "label_encoder_file": os.path.join(tempfile.mkdtemp(), "labels.txt"),
        "data_format": data_format,
        "sample_rate": SAMPLE_RATE,
        "sentence_len": seconds,
        "batch_size": batch,
        "num_workers": workers,
        "shard_buffer": 2000,
        "seed": 1986,
    }
    train, _, _ = dataio_prep(hparams)
    if isinstance(train, DataLoader):
        return train
    return make_dataloader(
        train, batch_size=batch, shuffle=True, num_workers=workers
    )


def bench_data(
    prep: Path, data_format: str, workers: int, batch: int, seconds: float
) -> dict:
    """Segments/s of one epoch of training batches (first batch untimed)."""
    loader = data_loader(prep, data_format, workers, batch, seconds)
    iterator = iter(loader)
    next(iterator)  # starts the workers
    start = time.perf_counter()
    n = n_batches = 0
    for b in iterator:
        n += len(b.id)
        n_batches += 1
    elapsed = time.perf_counter() - start
    return {
        "kind": "data",
        "format": data_format,
        "num_workers": workers,
        "batch": batch,
        "seconds_per_segment": seconds,
        "timed_batches": n_batches,
        "segments_per_s": round(n / elapsed, 1),
        "cpu_cores": os.cpu_count(),
    }


def bottleneck(model: dict, data: list[dict]) -> dict:
    """Which of the data path and the model limits training."""
    best = max(data, key=lambda d: d["segments_per_s"])
    ratio = best["segments_per_s"] / model["segments_per_s"]
    return {
        "kind": "bottleneck",
        "model": model["model"],
        "device": model["device"],
        "precision": model["precision"],
        "model_segments_per_s": model["segments_per_s"],
        "data_segments_per_s": best["segments_per_s"],
        "data_format": best["format"],
        "data_num_workers": best["num_workers"],
        "data_over_model": round(ratio, 2),
        "bottleneck": "data" if ratio < 1 else "model",
    }


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark; prints JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", choices=["cpu", "cuda", "all"], default="all"
    )
    parser.add_argument(
        "--models", nargs="+", choices=list(MODELS), default=list(MODELS)
    )
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=list(PRECISIONS),
        default=["fp32"],
        help="fp32 and/or bf16 (autocast)",
    )
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument(
        "--steps",
        type=int,
        default=3,
        help="timed steps per model on CPU (x10 on CUDA)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: torch's default)",
    )
    add_renamed_option(
        parser,
        "--prep_folder",
        "--data",
        type=Path,
        default=None,
        help="a prepared folder: also measure the data path (CSV, and the "
        "shards when shards/train/shardlist.json exists)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[0, 1, 2, 3, 4],
        help="DataLoader workers of the data path (default: 0 1 2 3 4)",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        if args.device == "cuda":
            print("error: CUDA is not available", file=sys.stderr)
            return 1
        devices.remove("cuda")
    if (
        args.prep_folder is not None
        and not (args.prep_folder / "train.csv").is_file()
    ):
        print(f"error: no train.csv in {args.prep_folder}", file=sys.stderr)
        return 1

    data: list[dict] = []
    if args.prep_folder is not None:
        formats = ["csv"]
        if (args.prep_folder / "shards/train/shardlist.json").is_file():
            formats.append("shards")
        for data_format in formats:
            for workers in args.workers:
                res = bench_data(
                    args.prep_folder,
                    data_format,
                    workers,
                    args.batch,
                    args.seconds,
                )
                print(json.dumps(res), flush=True)
                data.append(res)

    for device in devices:
        on_gpu = device == "cuda"
        peak = matmul_tflops(
            device, 8192 if on_gpu else 2048, 20 if on_gpu else 5
        )
        info = {
            "kind": "matmul",
            "device": device,
            "dtype": "float32",
            "tflop_per_s": round(peak, 4),
            "threads": torch.get_num_threads(),
        }
        if on_gpu:
            info["name"] = torch.cuda.get_device_name()
        print(json.dumps(info), flush=True)
        for name in args.models:
            for precision in args.precision:
                steps = args.steps * (10 if on_gpu else 1)
                res = bench_model(
                    name, device, args.batch, args.seconds, steps, precision
                )
                res["fraction_of_matmul"] = round(
                    res["train_tflop_per_s"] / peak, 4
                )
                print(json.dumps(res), flush=True)
                if data:
                    print(json.dumps(bottleneck(res, data)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
