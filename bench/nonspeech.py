#!/usr/bin/env python3
"""How often non-speech is identified as an enrolled speaker.

Embeds generated non-speech signals (silence, white / pink noise, clipped
noise, tones, DC, hum, one sample; 3 s at the model's rate) with an
export and scores them against speaker models enrolled from a manifest's
utterances (mean embedding per speaker, as ``verify.py --wav --enrol``).
Prints one JSON line per kind: how many of the signals would have been
accepted as a speaker without the speech check (best cosine above the
export's threshold; the mean and the largest best cosine say by how much)
and how many the speech check
(:mod:`deep_speaker_sb.speech`) now refuses; and the share of the
manifest's own utterances the speech check refuses.

Usage::

    python bench/nonspeech.py \\
        --model demo_run/results/triplet/1986/pretrained \\
        --csv demo_run/vivos8k/test.csv
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deep_speaker_sb.dataio import (  # noqa: E402
    read_manifest,
    speaker_utterances,
    utterances,
)
from deep_speaker_sb.inference import DeepSpeaker  # noqa: E402
from deep_speaker_sb.register import SpeakerRegister  # noqa: E402
from deep_speaker_sb.speech import (  # noqa: E402
    NONSPEECH_KINDS,
    NoSpeechError,
    check_speech,
    nonspeech_signal,
)


def nonspeech(kind: str, n: int, sr: int, rng: np.random.Generator):
    """``n`` signals of one kind, 3 s each (random level and frequency)."""
    return [nonspeech_signal(kind, 3 * sr, sr, rng) for _ in range(n)]


def main() -> None:
    """Prints one JSON line per kind of non-speech and one for speech."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="export folder")
    p.add_argument("--csv", required=True, help="enrolment manifest")
    p.add_argument("--n", type=int, default=20, help="signals per kind")
    args = p.parse_args()
    model = DeepSpeaker.from_hparams(
        source=args.model, run_opts={"device": "cpu"}
    )
    utts = utterances(read_manifest(args.csv))
    spk2wavs = {
        spk: [u.wav for u in us] for spk, us in speaker_utterances(utts).items()
    }
    register = SpeakerRegister.from_audio(model, spk2wavs, batch_size=32)
    rng = np.random.default_rng(0)
    sr = model.sample_rate
    for kind in NONSPEECH_KINDS:
        accepted = refused = 0
        best_scores = []
        signals = nonspeech(kind, args.n, sr, rng)
        for x in signals:
            emb = model.encode_batch(x)[0]
            best = register.rank(emb, model.threshold, top=1)[0]
            accepted += int(best.accepted)
            best_scores.append(best.score)
            try:
                check_speech(x, sr, model.speech_check)
            except NoSpeechError:
                refused += 1
        print(
            json.dumps(
                {
                    "kind": kind,
                    "n": len(signals),
                    "accepted_without_check": accepted,
                    "refused_by_check": refused,
                    "best_cosine_mean": round(float(np.mean(best_scores)), 4),
                    "best_cosine_max": round(float(np.max(best_scores)), 4),
                    "threshold": round(model.threshold, 4),
                }
            ),
            flush=True,
        )
    refused = 0
    for u in utts.values():
        try:
            check_speech(model.load_audio(u.wav), sr, model.speech_check)
        except NoSpeechError:
            refused += 1
    print(
        json.dumps(
            {
                "kind": "speech (the manifest)",
                "n": len(utts),
                "refused_by_check": refused,
            }
        )
    )


if __name__ == "__main__":
    main()
