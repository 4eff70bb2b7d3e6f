"""Baseline EER on the synthetic corpus: mean MFCC vectors, cosine scores.

Generates the default synthetic corpus (30 train + 10 test speakers x 20
utterances, seed 0) into a temporary folder, or reads ``--data_folder DIR``,
then for each *test* utterance computes the mean MFCC vector (c1..c19 of
speechbrain's ``MFCC`` on the audio resampled to 8 kHz, over the frames
within 35 dB of the loudest, i.e. without leading/trailing silence),
subtracts the mean over all test utterances and scores balanced trials
(every same-speaker pair, and as many different-speaker pairs drawn with
a seed) by cosine similarity.  Prints one JSON line with the EER.

With ``--voices voices.json`` (the speaker table of a corpus made by
``bench/tts_corpus.py``), the EER is also given for each kind of test
speaker on its own (``by_test``: ``same`` for the held-out speakers of the
training family, ``cross`` for the other synthesizer families, and
``cross/<family>`` for each of those): the trials and the mean vector
subtracted are then those of that kind's speakers only.

The EER must not be 0: the corpus is meant to need a trained network
(speaker cues under per-utterance channel colouring and noise), while the
speakers stay distinguishable for this plain baseline.

Usage::

    python bench/baseline_eer.py [--data_folder DIR] [--seed 0]
    python bench/baseline_eer.py --data_folder bench_data/tts_corpus \
        --voices bench_data/tts_corpus/voices.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from speechbrain.augment.time_domain import Resample
from speechbrain.lobes.features import MFCC
from speechbrain.utils.metric_stats import EER

from deep_speaker_sb.data.synthetic import generate_corpus
from deep_speaker_sb.renames import add_renamed_option

SAMPLE_RATE = 8000


def frame_db(wav: np.ndarray, n_frames: int, hop: int = 80) -> np.ndarray:
    """Energy (dB relative to the loudest) of 25 ms frames every ``hop``."""
    power = np.convolve(wav.astype(np.float64) ** 2, np.ones(200), "same")
    idx = np.minimum(np.arange(n_frames) * hop, len(wav) - 1)
    db = 10 * np.log10(power[idx] + 1e-10)
    return db - db.max()


def mean_mfcc_vectors(paths: list[Path], vad_db: float = 35.0) -> np.ndarray:
    """The mean MFCC vector (c1-c19, 8 kHz, voiced frames) of each file."""
    mfcc = MFCC(
        deltas=False,
        context=False,
        sample_rate=SAMPLE_RATE,
        n_fft=256,
        n_mels=40,
        n_mfcc=20,
    )
    vectors = []
    resamplers: dict[int, Resample] = {}
    for path in paths:
        wav, sr = sf.read(path, dtype="float32", always_2d=False)
        x = torch.from_numpy(wav).unsqueeze(0)
        if sr != SAMPLE_RATE:
            if sr not in resamplers:
                resamplers[sr] = Resample(sr, SAMPLE_RATE)
            x = resamplers[sr](x)
        with torch.no_grad():
            feats = mfcc(x)[0]  # [frames, 20]
        keep = frame_db(x[0].numpy(), len(feats)) > -vad_db
        if vad_db <= 0:
            keep[:] = True
        vectors.append(feats[keep, 1:].mean(0).numpy())
    return np.stack(vectors)


def utterance_vectors(
    test_folder: Path, vad_db: float = 35.0
) -> tuple[list[str], np.ndarray]:
    """Speaker of each test utterance and its mean MFCC vector."""
    paths = sorted(test_folder.glob("waves/*/*.wav"))
    speakers = [path.stem.rsplit("_", 1)[0] for path in paths]
    return speakers, mean_mfcc_vectors(paths, vad_db)


def balanced_trials(
    speakers: list[str], seed: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """All same-speaker pairs and as many different-speaker pairs."""
    pairs = list(itertools.combinations(range(len(speakers)), 2))
    same = [p for p in pairs if speakers[p[0]] == speakers[p[1]]]
    diff = [p for p in pairs if speakers[p[0]] != speakers[p[1]]]
    diff = random.Random(seed).sample(diff, min(len(same), len(diff)))
    return same, diff


def trial_eer(
    speakers: list[str], vecs: np.ndarray, seed: int = 1234
) -> dict[str, float | int]:
    """EER of balanced cosine trials over these utterances' vectors
    (their mean subtracted first), with the trial counts."""
    vecs = vecs - vecs.mean(0)
    vecs = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
    same, diff = balanced_trials(speakers, seed=seed)

    def scores(pairs: list[tuple[int, int]]) -> torch.Tensor:
        idx = np.array(pairs)
        return torch.from_numpy((vecs[idx[:, 0]] * vecs[idx[:, 1]]).sum(1))

    eer, _ = EER(scores(same), scores(diff))
    return {
        "eer": round(float(eer), 4),
        "n_speakers": len(set(speakers)),
        "n_utterances": len(speakers),
        "n_trials": len(same) + len(diff),
        "n_target": len(same),
    }


def eer_by_test_kind(
    speakers: list[str], vecs: np.ndarray, voices: dict[str, dict]
) -> dict[str, dict[str, float | int]]:
    """:func:`trial_eer` over the speakers of each test kind of
    ``voices.json`` (``same``, ``cross``) and each cross family."""
    groups: dict[str, list[int]] = {}
    for i, spk in enumerate(speakers):
        info = voices.get(spk, {})
        kind = info.get("test")
        if not kind:
            continue
        groups.setdefault(kind, []).append(i)
        if kind == "cross":
            groups.setdefault(f"cross/{info['family']}", []).append(i)
    result = {}
    for name, idx in sorted(groups.items()):
        if len({speakers[i] for i in idx}) < 2:
            continue
        result[name] = trial_eer([speakers[i] for i in idx], vecs[idx])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_renamed_option(
        parser,
        "--data_folder",
        "--corpus",
        help="existing corpus (default: make one)",
    )
    parser.add_argument("--seed", type=int, default=0, help="corpus seed")
    parser.add_argument(
        "--vad_db",
        type=float,
        default=35.0,
        help="keep frames within this many dB of the loudest (0: all)",
    )
    parser.add_argument(
        "--voices",
        help="voices.json of a bench/tts_corpus.py corpus: also give the "
        "EER of each test kind (same / cross family) on its own",
    )
    args = parser.parse_args()
    voices = None
    if args.voices:
        try:
            voices = json.loads(Path(args.voices).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            msg = f"error: cannot read {args.voices}: {exc}"
            raise SystemExit(msg) from None
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        corpus = Path(args.data_folder) if args.data_folder else None
        if corpus is None:
            corpus = generate_corpus(
                Path(tmp) / "corpus",
                seed=args.seed,
                num_workers=min(2, os.cpu_count() or 1),
            )
        gen_s = time.perf_counter() - start
        if not (corpus / "test" / "waves").is_dir():
            raise SystemExit(f"error: no test/waves folder in {corpus}")
        speakers, vecs = utterance_vectors(corpus / "test", args.vad_db)
    overall = trial_eer(speakers, vecs)
    result = {
        "corpus": str(args.data_folder or "generated"),
        "seed": args.seed,
        "n_speakers": overall["n_speakers"],
        "n_utterances": overall["n_utterances"],
        "n_trials": overall["n_trials"],
        "n_target": overall["n_target"],
        "features": f"mean MFCC c1-c19 @ {SAMPLE_RATE} Hz, vad {args.vad_db}",
        "eer": overall["eer"],
        "generate_s": round(gen_s, 1) if args.data_folder is None else None,
    }
    if voices is not None:
        result["by_test"] = eer_by_test_kind(speakers, vecs, voices)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
