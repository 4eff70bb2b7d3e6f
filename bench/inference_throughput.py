"""CPU inference throughput: torch vs ONNX fp32 vs ONNX int8 (vs Resemblyzer).

Two models: the paper-width ResCNN (the ``ResCNN()`` defaults: stages of
64/128/256/512 channels, 3 residual blocks each, 512-d embeddings, 64
log-mel bands; untrained, its int8 copy calibrated on ``<prep>/train.csv``
audio; ``--no_paper`` leaves it out) and the CPU-budget model
(``--budget`` export folder, by default the trained
``bench_data/accuracy/augment/triplet/pretrained``; its ONNX graphs are
added to a temporary copy).  ``--export NAME=FOLDER`` adds any other
export folder the same way under its own name, e.g. an ECAPA-TDNN export
(``config.json``'s ``model_class``; ``bench/accuracy.py``'s peer).
Backends: ``torch`` is ``DeepSpeaker.encode_batch``; ``onnx`` /
``onnx-int8`` run the export's graphs in onnxruntime
(``runtime.run_session``, what both ``DeepSpeaker(backend=...)`` and
``deep_speaker_sb.runtime`` call); all three take 8 kHz waveforms and run
features, normalization and the embedding model.

Clips of 3 s and 10 s of real speech (cut from ``<prep>/test.csv`` files)
are embedded at batch 1 and 32 with 1 and 2 threads.  One process per
model and thread count times every backend *in turn, call by call* (after
one warm-up call each), for ``--min_time`` seconds per backend (at least
one round), so that on a shared CPU all backends see the same load; one
JSON line per cell gives embeddings/s and ``rtf`` (processing time over
audio time) from the median time per call.  Peak memory (``peak_rss_mib``,
VmHWM) comes from one more process per backend that loads it and embeds
one batch of 32 x 3 s (``DeepSpeaker``, torch imported, for the three
backends; and the torch-free runtime for the two ONNX graphs).

Resemblyzer (``pip install 'deep_speaker_sb[bench]'``; skipped when absent)
embeds the same clips in the same rounds: they are resampled to its 16 kHz
and VAD-trimmed by its ``preprocess_wav`` *outside* the timing, then
``VoiceEncoder.embed_utterance`` is timed: its 1.6 s partial windows (1.3
per second) through the 3-layer LSTM and their average.  It embeds one
utterance per call, so its "batch 32" is 32 calls.

Then the cold start of the torch-free runtime (``python -c`` that imports
``deep_speaker_sb.runtime``, loads the CPU-budget model and embeds one 3 s
file: seconds from before the import, and the whole process) and cosine
scoring of trials.

Last, one ``targets`` line checks the speed targets of the model users
should deploy on a CPU (the CPU-budget export; the paper-width model is
compute-bound, its fp32 ONNX about torch's speed, which is accepted):
its int8 graph at least ``INT8_VS_PEER`` times Resemblyzer's embeddings/s
(1 thread, batch 1, every clip length, timed in the same rounds) and the
runtime's int8 cold start under ``COLD_START_S`` seconds.  ``--check``
exits 1 when one is missed (or could not be measured).  The EER half of
"at equal or better EER" comes from ``bench/accuracy.py``, not from here.

Usage::

    python bench/inference_throughput.py [--prep_folder bench_data/tts8k]
        [--budget FOLDER] [--export NAME=FOLDER ...] [--no_paper]
        [--threads 1 2] [--min_time 1.5] [--check]
"""

from __future__ import annotations

import argparse
import functools
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

from deep_speaker_sb.renames import add_renamed_option

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


#: The restated speed targets (issue #20): CPU-budget int8 embeddings/s
#: over Resemblyzer's, and the torch-free runtime's int8 cold start.
INT8_VS_PEER = 2.0
COLD_START_S = 1.0


def speed_targets(records: list[dict]) -> dict:
    """The ``targets`` line from the bench's JSON records.

    Arguments
    ---------
    records : list of dict
        Every JSON line the run printed (its workers' included).

    Returns
    -------
    dict
        ``int8_vs_resemblyzer`` (per clip length: the CPU-budget int8
        embeddings/s over Resemblyzer's, 1 thread, batch 1),
        ``cold_start_s`` (int8) and ``met`` (both targets met; False when
        one could not be measured).

    Example
    -------
    >>> cell = {"model": "budget", "threads": 1, "batch": 1,
    ...         "utterance_s": 3.0}
    >>> recs = [{**cell, "backend": "onnx-int8", "embeddings_per_s": 90.0},
    ...         {**cell, "backend": "resemblyzer", "embeddings_per_s": 30.0},
    ...         {"what": "runtime_cold_start", "precision": "int8",
    ...          "import_load_first_embedding_s": 0.2}]
    >>> t = speed_targets(recs)
    >>> t["int8_vs_resemblyzer"], t["met"]
    ({'3.0': 3.0}, True)
    >>> speed_targets(recs[1:])["met"]  # no int8 figure: not met
    False
    """
    cells: dict[float, dict[str, float]] = {}
    for r in records:
        if (
            r.get("model") == "budget"
            and r.get("threads") == 1
            and r.get("batch") == 1
            and "embeddings_per_s" in r
        ):
            cells.setdefault(r["utterance_s"], {})[r["backend"]] = r[
                "embeddings_per_s"
            ]
    ratios = {
        str(sec): round(c["onnx-int8"] / c["resemblyzer"], 2)
        for sec, c in sorted(cells.items())
        if c.get("onnx-int8") and c.get("resemblyzer")
    }
    cold = [
        r["import_load_first_embedding_s"]
        for r in records
        if r.get("what") == "runtime_cold_start"
        and r.get("precision") == "int8"
    ]
    met = (
        bool(ratios)
        and min(ratios.values()) >= INT8_VS_PEER
        and bool(cold)
        and max(cold) < COLD_START_S
    )
    return {
        "what": "targets",
        "int8_vs_resemblyzer": ratios,
        "int8_vs_resemblyzer_min": INT8_VS_PEER,
        "cold_start_s": max(cold) if cold else None,
        "cold_start_max_s": COLD_START_S,
        "met": met,
    }


def _record(what: dict, batch: int, seconds: float, walls: list[float]):
    wall = float(np.median(walls))
    return {
        **what,
        "batch": batch,
        "utterance_s": seconds,
        "embeddings_per_s": round(batch / wall, 2),
        "rtf": round(wall / (batch * seconds), 5),
        "ms_per_batch": round(1000 * wall, 1),
        "calls": len(walls),
    }


def _embedders(args: argparse.Namespace, clips: list[np.ndarray]) -> dict:
    """``{backend: embed(i, batch) -> callable}`` for this worker."""
    out = {}
    if args.model:
        from deep_speaker_sb.inference import DeepSpeaker
        from deep_speaker_sb.runtime import run_session

        model = DeepSpeaker.from_hparams(
            source=args.model, run_opts={"device": "cpu"}
        )
        for backend in args.backends:
            if backend == "torch":
                out[backend] = lambda i, b: functools.partial(
                    model.encode_batch,
                    torch.from_numpy(np.tile(clips[i], (b, 1))),
                )
            else:
                model.use_backend(backend, threads=args.threads[0])
                session = model.session

                def embed(i, b, session=session):
                    wavs = np.tile(clips[i], (b, 1))
                    lens = np.ones(b, dtype=np.float32)
                    return functools.partial(run_session, session, wavs, lens)

                out[backend] = embed
        model.use_backend("torch")
    if args.resemblyzer:
        from resemblyzer import VoiceEncoder, preprocess_wav

        encoder = VoiceEncoder("cpu", verbose=False)
        preprocess_wav(clips[0], source_sr=SR)  # its first call compiles
        prepared = [preprocess_wav(c, source_sr=SR) for c in clips]
        out["resemblyzer"] = lambda i, b: (
            lambda: [encoder.embed_utterance(prepared[i]) for _ in range(b)]
        )
    return out


def worker(args: argparse.Namespace) -> None:
    """Times the backends of one model (and Resemblyzer) in this process,
    call by call in turn, so that they share the CPU's conditions."""
    clips = [sf.read(p, dtype="float32")[0] for p in args.clips]
    seconds = [len(c) / SR for c in clips]
    torch.set_num_threads(args.threads[0])
    embedders = _embedders(args, clips)
    for i, s in enumerate(seconds):
        for batch in args.batches:
            calls = {n: e(i, batch) for n, e in embedders.items()}
            walls: dict[str, list[float]] = {n: [] for n in calls}
            for e in embedders.values():
                e(i, min(batch, 2))()  # warm-up (allocations, caches)
            budget = args.min_time * len(calls)
            while True:
                for n, fn in calls.items():
                    start = time.perf_counter()
                    fn()
                    walls[n].append(time.perf_counter() - start)
                rounds = len(walls[n])
                if sum(map(sum, walls.values())) >= budget or rounds >= 50:
                    break
            for n, w in walls.items():
                what = {"model": args.name, "backend": n}
                what["threads"] = args.threads[0]
                print(json.dumps(_record(what, batch, s, w)), flush=True)


def memory(args: argparse.Namespace) -> None:
    """Peak RSS of one backend: load, then embed batch 32 of the first
    clip once."""
    clips = [sf.read(p, dtype="float32")[0] for p in args.clips]
    torch.set_num_threads(args.threads[0])
    embed = _embedders(args, clips)[args.backends[0]]
    embed(0, max(args.batches))()
    print(
        json.dumps(
            {
                "what": "peak_memory",
                "model": args.name,
                "backend": args.backends[0],
                "batch": max(args.batches),
                "utterance_s": round(len(clips[0]) / SR, 2),
                "peak_rss_mib": _peak_rss_mib(),
            }
        ),
        flush=True,
    )


#: The names of the bench's own models (not for ``--export``).
OWN_MODELS = ("paper", "budget")


def named_export(text: str) -> tuple[str, Path]:
    """An ``--export`` value ``NAME=FOLDER`` as ``(name, folder)``.

    Example
    -------
    >>> named_export("ecapa=bench_data/ecapa/pretrained")
    ('ecapa', PosixPath('bench_data/ecapa/pretrained'))
    >>> named_export("budget=x")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: the name 'budget' is the bench's own
    """
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not NAME=FOLDER (e.g. ecapa=path/to/pretrained)"
        )
    if name in OWN_MODELS:
        raise argparse.ArgumentTypeError(
            f"the name {name!r} is the bench's own"
        )
    return name, Path(folder)


def export_models(
    tmp: Path,
    prep: Path,
    budget: Path | None,
    exports: dict[str, Path] | None = None,
    paper: bool = True,
) -> dict:
    """The export folders to time, with their ONNX graphs: the
    paper-width ResCNN (unless ``paper`` is false), the CPU-budget export
    and ``exports`` (name -> folder; copied, their graphs added)."""
    from speechbrain.processing.features import InputNormalization

    from deep_speaker_sb.export import export_pretrained, record_onnx
    from deep_speaker_sb.features import Features
    from deep_speaker_sb.inference import load_parts
    from deep_speaker_sb.lobes.rescnn import ResCNN
    from deep_speaker_sb.onnx_export import add_onnx, calibration_audio

    folders = {}
    if paper:
        torch.manual_seed(0)
        export_pretrained(
            tmp / "paper",
            compute_features=Features(),
            mean_var_norm=InputNormalization(norm_type="sentence"),
            embedding_model=ResCNN().eval(),
            threshold=0.5,
            card={"data": "none (benchmark)"},
            calibration=calibration_audio(prep / "train.csv"),
        )
        folders["paper"] = tmp / "paper"
    given = {"budget": budget} if budget is not None else {}
    for name, source in {**given, **(exports or {})}.items():
        shutil.copytree(source, tmp / name)
        parts = load_parts(tmp / name)
        entry = add_onnx(tmp / name, parts, prep / "train.csv")
        record_onnx(tmp / name, entry, parts)
        folders[name] = tmp / name
    for name, folder in folders.items():
        config = json.loads((folder / "config.json").read_text())
        ckpt = torch.load(folder / "embedding_model.ckpt", weights_only=True)
        n_params = sum(
            v.numel()
            for k, v in ckpt.items()
            if "running" not in k and "num_batches_tracked" not in k
        )
        print(
            json.dumps(
                {
                    "what": "model",
                    "model": name,
                    "params": n_params,
                    "model_class": config.get("model_class", "ResCNN"),
                    "config": config["model"],
                    "onnx": config["onnx"],
                }
            ),
            flush=True,
        )
    return folders


def _python_c(code: str) -> float:
    """Runs ``python -c code`` (the package of this checkout importable);
    the number it prints last."""
    run = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return float(run.stdout.split()[-1])


def runtime_memory(folder: Path, clip: Path, precision: str, batch: int):
    """Peak RSS of the torch-free runtime embedding ``batch`` copies of
    ``clip`` (a process that never imports torch)."""
    code = (
        "import json, sys, numpy as np, soundfile as sf\n"
        "from deep_speaker_sb import runtime\n"
        f"m = runtime.OnnxSpeaker({str(folder)!r}, {precision!r}, threads=1)\n"
        f"x = sf.read({str(clip)!r}, dtype='float32')[0]\n"
        f"m.embed_waveforms(np.tile(x, ({batch}, 1)))\n"
        "assert 'torch' not in sys.modules\n"
        "status = open('/proc/self/status').read().split('VmHWM:')[1]\n"
        "print(int(status.split()[0]) / 1024)\n"
    )
    last = _python_c(code)
    return {
        "what": "peak_memory",
        "model": folder.name,
        "backend": f"runtime {precision} (no torch)",
        "batch": batch,
        "peak_rss_mib": round(last, 1),
    }


def cold_start(folder: Path, clip: Path, precision: str) -> dict:
    """Import + load + first embedding of the runtime, in a new process."""
    code = (
        "import time; t = time.perf_counter()\n"
        "from deep_speaker_sb import runtime\n"
        f"m = runtime.OnnxSpeaker({str(folder)!r}, {precision!r}, threads=1)\n"
        f"m.encode_files([{str(clip)!r}])\n"
        "print(time.perf_counter() - t)\n"
    )
    start = time.perf_counter()
    last = _python_c(code)
    return {
        "what": "runtime_cold_start",
        "precision": precision,
        "import_load_first_embedding_s": round(last, 3),
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
    add_renamed_option(
        p, "--prep_folder", "--prep", type=Path, default=DEFAULT_PREP
    )
    p.add_argument("--budget", type=Path, default=None)
    p.add_argument(
        "--export",
        type=named_export,
        nargs="+",
        default=[],
        metavar="NAME=FOLDER",
        help="more export folders to time under their name (e.g. "
        "ecapa=FOLDER, an ECAPA-TDNN export)",
    )
    p.add_argument(
        "--no_paper",
        action="store_true",
        help="leave out the untrained paper-width ResCNN",
    )
    p.add_argument("--seconds", type=float, nargs="+", default=[3.0, 10.0])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--min_time", type=float, default=1.5)
    p.add_argument("--trials", type=int, default=200000)
    p.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when a speed target is missed (see the targets line)",
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)  # time | memory
    p.add_argument("--backends", nargs="+", default=[], help=argparse.SUPPRESS)
    p.add_argument("--resemblyzer", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--name", help=argparse.SUPPRESS)
    p.add_argument("--clips", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        (worker if args.worker == "time" else memory)(args)
        return
    budget = args.budget
    if budget is None and DEFAULT_BUDGET.is_dir():
        budget = DEFAULT_BUDGET
    exports = dict(args.export)
    for folder in ([budget] if budget else []) + list(exports.values()):
        if not folder.is_dir():
            p.error(f"export folder not found: {folder}")
    if len(exports) < len(args.export):
        p.error("--export: each NAME once")
    if args.no_paper and not (budget or exports):
        p.error("--no_paper leaves nothing to time: give --budget or --export")
    start = time.perf_counter()
    records: list[dict] = []

    def emit(record: dict) -> None:
        records.append(record)
        print(json.dumps(record), flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = make_clips(args.prep_folder, tmp, args.seconds)
        folders = export_models(
            tmp, args.prep_folder, budget, exports, paper=not args.no_paper
        )
        try:
            import resemblyzer  # noqa: F401

            peer = ["--resemblyzer"]
        except ImportError:
            print(json.dumps({"what": "resemblyzer", "skipped": True}))
            peer = []
        clip_args = ["--clips", *map(str, clips)]

        def run(mode: str, name: str, folder, extra: list[str]) -> None:
            cmd = [sys.executable, __file__, "--worker", mode, "--name", name]
            cmd += ["--model", str(folder)] if folder else []
            cmd += ["--batches", *map(str, args.batches), *clip_args, *extra]
            out = subprocess.run(
                cmd, check=True, cwd=ROOT, stdout=subprocess.PIPE, text=True
            ).stdout
            for line in out.splitlines():
                emit(json.loads(line))

        for name, folder in folders.items():
            for threads in args.threads:
                extra = ["--threads", str(threads), "--min_time"]
                extra += [str(args.min_time), "--backends", *BACKENDS, *peer]
                run("time", name, folder, extra)
        for name, folder in folders.items():
            for backend in BACKENDS:
                run("memory", name, folder, ["--backends", backend])
            for precision in ("fp32", "int8"):
                emit(runtime_memory(folder, clips[0], precision, 32))
        if peer:
            run(
                "memory",
                "resemblyzer",
                None,
                ["--backends", "resemblyzer", *peer],
            )
        if "budget" in folders:
            for precision in ("fp32", "int8"):
                emit(cold_start(folders["budget"], clips[0], precision))
    emit(time_scoring(args.trials))
    targets = speed_targets(records)
    emit(targets)
    minutes = round((time.perf_counter() - start) / 60, 2)
    emit({"what": "bench_minutes", "minutes": minutes})
    if args.check and not targets["met"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
