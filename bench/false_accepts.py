"""Where a model's false accepts come from: the low-false-accept end of
the DET curve (minDCF at p_target 0.01) broken down by pairs of voices.

At a threshold set for a false-accept rate (1% by default) the script
counts the impostor trials accepted, groups them by the two voices'
synthesizer families (``voices.json``'s ``family``) and by voice pair,
and gives each group's share of the impostor trials beside its share of
the false accepts.  It also gives minDCF(0.01) without the impostor trials
of the family pair with the most false accepts, so a reader can tell a
model that confuses a few near-twin voices from one that confuses many.
Nothing is trained: it reads ``verify.py``'s ``scores.txt`` files.

Usage::

    python bench/false_accepts.py --prep_folder bench_data/tts8k \\
        --voices bench_data/tts_corpus/voices.json \\
        --scores \
        recipe=bench_data/accuracy/augment/seed1/verify_pretrained/scores.txt

One JSON line per model, then a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from deep_speaker_sb.calibration import far_threshold  # noqa: E402
from deep_speaker_sb.cli import run_cli  # noqa: E402
from deep_speaker_sb.dataio import read_manifest, utterances  # noqa: E402
from deep_speaker_sb.errors import ConfigError  # noqa: E402
from deep_speaker_sb.scoring import (  # noqa: E402
    Trial,
    compute_min_dcf,
    read_scores,
)


def pair_key(a: str, b: str) -> str:
    """An unordered pair as one string.

    Example
    -------
    >>> pair_key("mbrola", "espeak"), pair_key("espeak", "mbrola")
    ('espeak+mbrola', 'espeak+mbrola')
    """
    return "+".join(sorted((a, b)))


def false_accept_breakdown(
    trials: Sequence[Trial],
    scores: torch.Tensor,
    utt2spk: dict[str, str],
    spk2family: dict[str, str],
    far: float = 0.01,
    top: int = 5,
) -> dict:
    """False accepts at the ``far`` threshold, by family pair and voice pair.

    Returns
    -------
    dict
        ``threshold``, ``far`` and ``frr`` measured there, ``false_accepts``,
        ``families`` (per family pair: impostor trials, false accepts and
        their shares, most false accepts first), ``voice_pairs`` (the
        ``top`` voice pairs), ``min_dcf_0.01`` and, for the first family
        pair, ``min_dcf_0.01_without`` (its impostor trials left out).

    Example
    -------
    >>> trials = [(0, "a1", "b1"), (0, "a1", "c1"), (0, "b1", "c1"),
    ...           (1, "a1", "a2"), (1, "c1", "c2")]
    >>> scores = torch.tensor([0.9, 0.1, 0.2, 0.8, 0.7])
    >>> utt2spk = {u: u[0] for t in trials for u in t[1:]}
    >>> out = false_accept_breakdown(trials, scores, utt2spk,
    ...     {"a": "x", "b": "x", "c": "y"}, far=0.34)
    >>> out["false_accepts"], out["families"][0]["pair"]
    (1, 'x+x')
    >>> out["voice_pairs"][0]
    {'pair': 'a+b', 'impostor_trials': 1, 'false_accepts': 1}
    """
    labels = torch.tensor([t[0] for t in trials])
    scores = scores.float()
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        raise ConfigError("the scores need target and impostor trials")
    threshold = far_threshold(neg.numpy(), far)
    fam_trials: Counter[str] = Counter()
    fam_fa: Counter[str] = Counter()
    voice_trials: Counter[str] = Counter()
    voice_fa: Counter[str] = Counter()
    neg_families = []  # the family pair of each impostor trial, as in neg
    for (label, a, b), score in zip(trials, scores.tolist(), strict=True):
        if label:
            continue
        spk_a, spk_b = utt2spk[a], utt2spk[b]
        fam = pair_key(spk2family[spk_a], spk2family[spk_b])
        neg_families.append(fam)
        voices = pair_key(spk_a, spk_b)
        fam_trials[fam] += 1
        voice_trials[voices] += 1
        if score > threshold:
            fam_fa[fam] += 1
            voice_fa[voices] += 1
    n_fa = sum(fam_fa.values())
    families = [
        {
            "pair": fam,
            "impostor_trials": n,
            "share_of_impostor_trials": round(n / len(neg), 4),
            "false_accepts": fam_fa[fam],
            "share_of_false_accepts": round(fam_fa[fam] / max(n_fa, 1), 4),
        }
        for fam, n in sorted(
            fam_trials.items(), key=lambda kv: (-fam_fa[kv[0]], kv[0])
        )
    ]
    out = {
        "threshold": round(threshold, 4),
        "far": round(n_fa / len(neg), 4),
        "frr": round(float((pos <= threshold).float().mean()), 4),
        "false_accepts": n_fa,
        "impostor_trials": len(neg),
        "families": families,
        "voice_pairs": [
            {
                "pair": pair,
                "impostor_trials": voice_trials[pair],
                "false_accepts": k,
            }
            for pair, k in voice_fa.most_common(top)
        ],
        "min_dcf_0.01": round(compute_min_dcf(pos, neg)[0], 4),
    }
    if families:
        worst = families[0]["pair"]
        rest = neg[torch.tensor([fam != worst for fam in neg_families])]
        out["without"] = worst
        out["min_dcf_0.01_without"] = round(compute_min_dcf(pos, rest)[0], 4)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--prep_folder",
        type=Path,
        required=True,
        help="its test.csv maps utterances to voices",
    )
    parser.add_argument(
        "--voices",
        type=Path,
        required=True,
        help="the corpus's voices.json (families)",
    )
    parser.add_argument(
        "--scores",
        nargs="+",
        required=True,
        metavar="NAME=FILE",
        help="verify.py scores.txt",
    )
    parser.add_argument("--far", type=float, default=0.01)
    parser.add_argument("--top", type=int, default=5)
    return parser.parse_args(argv)  # fmt: skip


def _named(items: Sequence[str]) -> list[tuple[str, Path]]:
    out = []
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--scores wants NAME=FILE, got {item!r}")
        if not Path(path).is_file():
            raise ConfigError(f"no scores file {path}")
        out.append((name, Path(path)))
    return out


def markdown(rows: Sequence[dict]) -> str:
    """One table row per model: FRR at the threshold, the family pair with
    most false accepts and its shares, minDCF with and without it."""
    lines = [
        "| model | FRR at FAR 1% | most false accepts | its share of "
        "impostor trials | its share of false accepts | minDCF(0.01) | "
        "minDCF(0.01) without it |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        first = row["families"][0]
        lines.append(
            f"| {row['model']} | {row['frr']:.1%} | {first['pair']} | "
            f"{first['share_of_impostor_trials']:.1%} | "
            f"{first['share_of_false_accepts']:.1%} | "
            f"{row['min_dcf_0.01']:.3f} | {row['min_dcf_0.01_without']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Prints one JSON line per model, then the Markdown table."""
    args = parse_args(argv)
    named = _named(args.scores)
    if not args.voices.is_file():
        raise ConfigError(f"no voices file {args.voices}")
    spk2family = {
        spk: info["family"]
        for spk, info in json.loads(args.voices.read_text()).items()
    }
    utt2spk = {
        u.utt_id: u.spk_id
        for u in utterances(
            read_manifest(args.prep_folder / "test.csv")
        ).values()
    }
    rows = []
    for name, path in named:
        trials, scores = read_scores(path)
        row = {"model": name, "scores": str(path)}
        row.update(
            false_accept_breakdown(
                trials, scores, utt2spk, spk2family, args.far, args.top
            )
        )
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(markdown(rows))


if __name__ == "__main__":
    sys.exit(run_cli(main))
