#!/usr/bin/env python3
"""Test EER of an export through torch, ONNX fp32 and the int8 copies.

Copies the export folder into a temporary one, adds the ONNX graphs there
(:func:`deep_speaker_sb.onnx_export.add_onnx`, the int8 copy calibrated on
``<prep>/train.csv``) and a dynamically quantized copy for comparison,
then scores the prepared test trials with each (the embeddings of
``DeepSpeaker.encode_files``, as ``verify.py`` does) and prints one JSON
line per backend: EER (%), minDCF(0.01), the largest and the mean gap of
its trial scores (cosine) from torch's, and the embedding minutes.

Usage::

    python bench/onnx_accuracy.py \\
        --model bench_data/accuracy/augment/triplet/pretrained \\
        --prep_folder bench_data/tts8k
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import torch

from deep_speaker_sb import evaluation
from deep_speaker_sb.export import record_onnx
from deep_speaker_sb.inference import DeepSpeaker, load_parts
from deep_speaker_sb.onnx_export import ONNX_FILE, add_onnx
from deep_speaker_sb.renames import add_renamed_option

DYNAMIC_FILE = "embedding_model.int8-dynamic.onnx"


def quantize_dynamic(folder: Path) -> Path:
    """The dynamically quantized copy of ``folder``'s fp32 graph."""
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization import quantize_dynamic as quantize

    out = folder / DYNAMIC_FILE
    graph = onnx.load(str(folder / ONNX_FILE)).graph
    quantize(
        str(folder / ONNX_FILE),
        str(out),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["Conv", "Gemm"],
        # the ResCNN only, as the static copy: not the DFT convolution
        nodes_to_exclude=[
            n.name for n in graph.node if not n.name.startswith("/model/")
        ],
    )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="export folder")
    add_renamed_option(
        p,
        "--prep_folder",
        "--prep",
        required=True,
        help="prepared corpus folder",
    )
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch_size", type=int, default=16)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    prep = Path(args.prep_folder)
    trials, utts = evaluation.load_trials(
        prep / "trials.txt", prep / "test.csv"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "pretrained"
        shutil.copytree(args.model, folder)
        parts = load_parts(folder)
        entry = add_onnx(folder, parts, prep / "train.csv")
        record_onnx(folder, entry, parts)
        dynamic = quantize_dynamic(folder)
        model = DeepSpeaker.from_hparams(
            source=folder, run_opts={"device": "cpu"}
        )
        ref = None
        runs = [
            ("torch fp32", "torch", None),
            ("onnx fp32", "onnx", None),
            ("onnx int8 (static QDQ, shipped)", "onnx-int8", None),
            ("onnx int8 (dynamic)", "onnx", dynamic),
        ]
        for name, backend, graph in runs:
            model.use_backend(backend, threads=args.threads, graph=graph)
            start = time.perf_counter()
            result = evaluation.evaluate_trials(
                model, trials, utts, batch_size=args.batch_size
            )
            minutes = (time.perf_counter() - start) / 60
            record = {
                "backend": name,
                "model": str(args.model),
                "trials": len(trials),
                "eer_pct": round(100 * result.report["eer"], 3),
                "min_dcf_0.01": round(result.report["min_dcf_0.01"], 4),
                "embed_minutes": round(minutes, 2),
            }
            if ref is None:
                ref = result.scores
            gap = (result.scores - ref).abs()
            record["score_gap_vs_torch_max"] = round(float(gap.max()), 5)
            record["score_gap_vs_torch_mean"] = round(float(gap.mean()), 6)
            print(json.dumps(record), flush=True)
        print(json.dumps({"onnx": entry}), flush=True)


if __name__ == "__main__":
    main()
