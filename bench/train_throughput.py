#!/usr/bin/env python3
"""Training throughput of softmax pre-training (segments per second).

One training step = Features (64-band fbank at 8 kHz) -> sentence
normalization -> ResCNN -> speaker classifier -> NLL -> backward -> Adam
step, on random audio: ``--batch`` crops of ``--seconds`` seconds.  For the
paper-width model (channels 64-128-256-512, emb 512, ~24 M parameters) and
the narrow demo model (8-16-32-64, emb 64, one block per stage), on CPU
(and CUDA when available), it prints one JSON line per measurement:

- ``segments_per_s``: training throughput;
- ``fwd_gflop_per_segment``: forward FLOPs of one segment, counted with
  ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add = 2 FLOPs);
- ``train_tflop_per_s``: 3 x forward FLOPs x segments/s (backward ~ 2 x
  forward), and ``fraction_of_matmul``: that divided by the measured
  throughput of a large float32 matmul on the same device (the
  ``"kind": "matmul"`` line).

Usage:
    python bench/train_throughput.py                 # CPU (+ CUDA if any)
    python bench/train_throughput.py --device cpu --models demo --steps 5
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from speechbrain.processing.features import InputNormalization
from torch.utils.flop_counter import FlopCounterMode

from deep_speaker_sb.brains.softmax import SpeakerClassifier
from deep_speaker_sb.features import Features
from deep_speaker_sb.lobes.rescnn import ResCNN

MODELS = {
    "paper": {"channels": (64, 128, 256, 512), "emb_dim": 512},
    # the `make demo` model (README: softmax pre-training on the demo corpus)
    "demo": {
        "channels": (8, 16, 32, 64),
        "emb_dim": 64,
        "blocks_per_stage": 1,
    },
}
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


def build(name: str, device: str) -> dict[str, torch.nn.Module]:
    """Features, normalization, ResCNN and classifier of one model."""
    cfg = MODELS[name]
    return {
        "compute_features": Features("fbank", SAMPLE_RATE, n_mels=64),
        "mean_var_norm": InputNormalization(norm_type="sentence"),
        "embedding_model": ResCNN(n_mels=64, **cfg),
        "classifier": SpeakerClassifier(cfg["emb_dim"], N_SPEAKERS),
    }


def forward(mods: dict[str, torch.nn.Module], wavs, lens) -> torch.Tensor:
    """Log-probabilities of a batch (the training forward pass)."""
    feats = mods["mean_var_norm"](mods["compute_features"](wavs), lens)
    return mods["classifier"](mods["embedding_model"](feats, lens))


def bench_model(
    name: str, device: str, batch: int, seconds: float, steps: int
) -> dict:
    """Times ``steps`` training steps after one warm-up step."""
    torch.manual_seed(0)
    mods = {k: m.to(device).train() for k, m in build(name, device).items()}
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
        loss = torch.nn.functional.cross_entropy(
            16.0 * forward(mods, wavs, lens), spk
        )
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


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark; prints JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--device", choices=["cpu", "cuda", "all"], default="all"
    )
    parser.add_argument(
        "--models", nargs="+", choices=list(MODELS), default=list(MODELS)
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
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    if "cuda" in devices and not torch.cuda.is_available():
        if args.device == "cuda":
            print("error: CUDA is not available", file=sys.stderr)
            return 1
        devices.remove("cuda")
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
            steps = args.steps * (10 if on_gpu else 1)
            res = bench_model(name, device, args.batch, args.seconds, steps)
            res["fraction_of_matmul"] = round(
                res["train_tflop_per_s"] / peak, 4
            )
            print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
