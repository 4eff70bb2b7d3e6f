"""CPU inference throughput: torch vs ONNX fp32 vs ONNX int8 (vs Resemblyzer).

Two models: the paper-width ResCNN (the ``ResCNN()`` defaults: stages of
64/128/256/512 channels, 3 residual blocks each, 512-d embeddings, 64
log-mel bands; untrained, its int8 copy calibrated on ``<prep>/train.csv``
audio) and the CPU-budget model (``--budget`` export folder, by default
the trained ``bench_data/accuracy/augment/triplet/pretrained``; its ONNX
graphs are added to a temporary copy).  Each backend of each model runs in
its own process (so that its peak memory is its own): ``torch`` is
``DeepSpeaker.encode_batch``, ``onnx`` / ``onnx-int8`` the same call with
``backend="onnx"`` / ``"onnx-int8"``; all three take 8 kHz waveforms and
run features, normalization and the ResCNN.  For 1 and 2 threads, batch 1
and 32, 3 s and 10 s utterances (real speech cut from ``<prep>/test.csv``
files; the same clips for every backend), one JSON line gives
embeddings/s, ``rtf`` (processing time over audio time) and the process's
peak RSS (``peak_rss_mib``, over all its measurements).

Resemblyzer (``pip install 'deep_speaker_sb[bench]'``; skipped when absent)
embeds the same clips: they are resampled to its 16 kHz and VAD-trimmed by
its ``preprocess_wav`` *outside* the timing (``prep_ms`` reports that
cost apart), then ``VoiceEncoder.embed_utterance`` is timed: its 1.6 s
partial windows (1.3 per second) through the 3-layer LSTM and their
average.  It embeds one utterance per call, so its "batch 32" is 32 calls.

Then the cold start of the torch-free runtime (``python -c`` that imports
``deep_speaker_sb.runtime``, loads the CPU-budget model and embeds one 3 s
file: seconds from before the import, and the whole process) and cosine
scoring of trials.  Measurements share the CPU with whatever else runs:
compare ratios within one run.

Usage::

    python bench/inference_throughput.py [--prep bench_data/tts8k]
        [--budget FOLDER] [--threads 1 2] [--min_time 1.0]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PREP = ROOT / "bench_data" / "tts8k"
DEFAULT_BUDGET = (
    ROOT / "bench_data" / "accuracy" / "augment" / "triplet" / "pretrained"
)
BACKENDS = ("torch", "onnx", "onnx-int8")
SR = 8000


def make_clips(prep: Path, out: Path, seconds: list[float]) -> list[Path]:
    """One 8 kHz clip per duration, concatenated from test utterances."""
    from deep_speaker_sb.dataio import read_manifest, resolve_wav

    csv = prep / "test.csv"
    wavs = sorted({str(resolve_wav(r.wav, prep)) for r in read_manifest(csv)})
    random.Random(0).shuffle(wavs)
    audio = np.concatenate([sf.read(w, dtype="float32")[0] for w in wavs[:20]])
    paths = []
    for s in seconds:
        path = out / f"clip_{s:g}s.wav"
        sf.write(path, audio[: int(s * SR)], SR)
        paths.append(path)
    return paths


def _peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM: unlike ``ru_maxrss``, not inherited
    from the parent across ``exec``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _time(fn, min_time: float) -> tuple[float, int]:
    """Mean seconds per call of ``fn`` (at least one call, ``min_time``)."""
    calls, start = 0, time.perf_counter()
    while True:
        fn()
        calls += 1
        wall = time.perf_counter() - start
        if wall >= min_time or calls >= 50:
            return wall / calls, calls


def _record(what: dict, batch: int, seconds: float, wall: float, calls: int):
    return {
        **what,
        "batch": batch,
        "utterance_s": seconds,
        "embeddings_per_s": round(batch / wall, 2),
        "rtf": round(wall / (batch * seconds), 5),
        "ms_per_batch": round(1000 * wall, 1),
        "calls": calls,
    }


def worker(args: argparse.Namespace) -> None:
    """Times one backend of one model (or Resemblyzer) in this process."""
    clips = [sf.read(p, dtype="float32")[0] for p in args.clips]
    seconds = [len(c) / SR for c in clips]
    what = {"model": args.name, "backend": args.backend}
    if args.backend == "resemblyzer":
        from resemblyzer import VoiceEncoder, preprocess_wav

        encoder = VoiceEncoder("cpu", verbose=False)
        preprocess_wav(clips[0], source_sr=SR)  # its first call compiles
        start = time.perf_counter()
        prepared = [preprocess_wav(c, source_sr=SR) for c in clips]
        prep_ms = 1000 * (time.perf_counter() - start) / len(clips)
        what["prep_ms"] = round(prep_ms, 1)

        def embed(i, batch):
            return lambda: [
                encoder.embed_utterance(prepared[i]) for _ in range(batch)
            ]
    else:
        from deep_speaker_sb.inference import DeepSpeaker

        model = DeepSpeaker.from_hparams(
            source=args.model, run_opts={"device": "cpu"}
        )

        def embed(i, batch):
            wavs = torch.from_numpy(np.tile(clips[i], (batch, 1)))
            return lambda: model.encode_batch(wavs)

    for threads in args.threads:
        torch.set_num_threads(threads)
        if args.backend in BACKENDS[1:]:
            model.use_backend(args.backend, threads=threads)
        for i, s in enumerate(seconds):
            for batch in args.batches:
                embed(i, min(batch, 2))()  # warm-up (allocations, caches)
                wall, calls = _time(embed(i, batch), args.min_time)
                rec = _record(
                    {**what, "threads": threads}, batch, s, wall, calls
                )
                rec["peak_rss_mib"] = _peak_rss_mib()
                print(json.dumps(rec), flush=True)


def export_models(tmp: Path, prep: Path, budget: Path | None) -> dict:
    """The two export folders, with their ONNX graphs."""
    from speechbrain.processing.features import InputNormalization

    from deep_speaker_sb.export import export_pretrained
    from deep_speaker_sb.features import Features
    from deep_speaker_sb.lobes.rescnn import ResCNN
    from deep_speaker_sb.onnx_export import add_onnx, calibration_audio

    torch.manual_seed(0)
    paper = ResCNN().eval()
    export_pretrained(
        tmp / "paper",
        compute_features=Features(),
        mean_var_norm=InputNormalization(norm_type="sentence"),
        embedding_model=paper,
        threshold=0.5,
        card={"data": "none (benchmark)"},
        calibration=calibration_audio(prep / "train.csv"),
    )
    folders = {"paper": tmp / "paper"}
    if budget is not None:
        shutil.copytree(budget, tmp / "budget")
        add_onnx(tmp / "budget", prep / "train.csv")
        folders["budget"] = tmp / "budget"
    for name, folder in folders.items():
        config = json.loads((folder / "config.json").read_text())
        ckpt = torch.load(folder / "embedding_model.ckpt", weights_only=True)
        n_params = sum(v.numel() for k, v in ckpt.items() if "running" not in k)
        print(
            json.dumps(
                {
                    "what": "model",
                    "model": name,
                    "params": n_params,
                    "config": config["model"],
                    "onnx": config["onnx"],
                }
            ),
            flush=True,
        )
    return folders


def cold_start(folder: Path, clip: Path, precision: str) -> dict:
    """Import + load + first embedding of the runtime, in a new process."""
    code = (
        "import time; t = time.perf_counter()\n"
        "from deep_speaker_sb import runtime\n"
        f"m = runtime.OnnxSpeaker({str(folder)!r}, {precision!r}, threads=1)\n"
        f"m.embed([{str(clip)!r}])\n"
        "print(time.perf_counter() - t)\n"
    )
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return {
        "what": "runtime_cold_start",
        "precision": precision,
        "import_load_first_embedding_s": round(
            float(run.stdout.split()[-1]), 3
        ),
        "whole_process_s": round(time.perf_counter() - start, 3),
    }


def time_scoring(n_trials: int, n_utts: int = 2000, dim: int = 512) -> dict:
    """Times cosine scoring of ``n_trials`` trials on random embeddings."""
    from deep_speaker_sb.scoring import score_trials

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
        "trials": n_trials,
        "emb_dim": dim,
        "seconds": round(wall, 3),
        "trials_per_s": round(n_trials / wall),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prep", type=Path, default=DEFAULT_PREP)
    p.add_argument("--budget", type=Path, default=None)
    p.add_argument("--seconds", type=float, nargs="+", default=[3.0, 10.0])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--min_time", type=float, default=1.0)
    p.add_argument("--trials", type=int, default=200000)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--backend", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--name", help=argparse.SUPPRESS)
    p.add_argument("--clips", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return
    budget = args.budget
    if budget is None and DEFAULT_BUDGET.is_dir():
        budget = DEFAULT_BUDGET
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = make_clips(args.prep, tmp, args.seconds)
        folders = export_models(tmp, args.prep, budget)
        jobs = [(n, f, b) for n, f in folders.items() for b in BACKENDS]
        try:
            import resemblyzer  # noqa: F401

            jobs.append(("resemblyzer", None, "resemblyzer"))
        except ImportError:
            print(json.dumps({"what": "resemblyzer", "skipped": True}))
        common = ["--threads", *map(str, args.threads)]
        common += ["--batches", *map(str, args.batches)]
        common += [
            "--min_time",
            str(args.min_time),
            "--clips",
            *map(str, clips),
        ]
        for name, folder, backend in jobs:
            cmd = [sys.executable, __file__, "--worker", "--name", name]
            cmd += ["--backend", backend, "--model", str(folder), *common]
            subprocess.run(cmd, check=True, cwd=ROOT)
        if "budget" in folders:
            for precision in ("fp32", "int8"):
                rec = cold_start(folders["budget"], clips[0], precision)
                print(json.dumps(rec), flush=True)
    print(json.dumps(time_scoring(args.trials)), flush=True)
    print(
        json.dumps(
            {
                "what": "bench_minutes",
                "minutes": round((time.perf_counter() - start) / 60, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
