#!/usr/bin/env python3
"""Speaker verification with a trained Deep Speaker export.

Three modes (the model is the newest ``results/triplet/*/pretrained``, or
``<--results>/*/pretrained``, unless ``--model DIR`` is given):

- ``python verify.py`` / ``python verify.py --trials PATH``: scores every
  trial of the prepared ``trials.txt`` (one embedding per utterance), prints
  EER and minDCF (p_target 0.01, 0.05) and writes ``scores.txt``,
  ``report.json``, ``score_hist.png`` and ``det.png`` into ``--out``.
  ``--snorm`` adds symmetric score normalization against a cohort of
  training utterances.
- ``python verify.py --spk A,B``: cosine similarity over every pair of
  utterances of test speakers A and B (SAN, anchor-negative), or over the
  distinct pairs of A's utterances when A = B (SAP, anchor-positive).
- ``python verify.py --wav FILE --enrol CSV_or_DIR``: the closest enrolled
  speakers of a recording (or "unknown" below the threshold); a speaker's
  model is the mean embedding of its files, the query file itself left out.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # local folders only

import torch  # noqa: E402

from deep_speaker_sb.cli import run_cli  # noqa: E402
from deep_speaker_sb.errors import UserError  # noqa: E402
from deep_speaker_sb.export import (  # noqa: E402
    check_export_folder,
    latest_export,
)
from deep_speaker_sb.inference import (  # noqa: E402
    DeepSpeaker,
    enrolment_folder,
    manifest_utterances,
    speaker_models,
    speaker_utterances,
)
from deep_speaker_sb.scoring import (  # noqa: E402
    pair_scores,
    plot_det,
    plot_score_histograms,
    read_trials,
    score_trials,
    snorm_scores,
    summarize,
    verification_metrics,
    write_scores,
)
from deep_speaker_sb.utils import write_json  # noqa: E402

DEFAULT_CSV = "data/vivos8k/test.csv"
DEFAULT_RESULTS = "results/triplet"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument(
        "--model",
        help="export folder (default: newest <--results>/*/pretrained)",
    )
    p.add_argument(
        "--results",
        default=DEFAULT_RESULTS,
        help="where to look for the newest */pretrained when --model is "
        f"not given (default {DEFAULT_RESULTS})",
    )
    p.add_argument(
        "--csv",
        default=DEFAULT_CSV,
        help=f"prepared test manifest (default {DEFAULT_CSV})",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--spk", help="two test speaker ids 'A,B' (SAN) or 'A,A' / 'A' (SAP)"
    )
    mode.add_argument(
        "--trials", help="trials file (default: trials.txt next to --csv)"
    )
    mode.add_argument("--wav", help="audio file to identify (with --enrol)")
    p.add_argument(
        "--enrol",
        help="enrolment manifest CSV or folder of "
        "<SPK>/<file>.wav (with --wav)",
    )
    p.add_argument(
        "--top",
        type=int,
        default=3,
        help="speakers listed by --wav (default 3)",
    )
    p.add_argument(
        "--out",
        help="output folder of --trials (default: "
        "<model>/../verify, or verify_snorm with --snorm)",
    )
    p.add_argument(
        "--snorm",
        action="store_true",
        help="s-norm the trial scores against a cohort",
    )
    p.add_argument(
        "--cohort_csv",
        help="manifest the s-norm cohort is "
        "drawn from (default: train.csv next to --csv)",
    )
    p.add_argument(
        "--cohort_size",
        type=int,
        default=200,
        help="cohort utterances (default 200)",
    )
    p.add_argument(
        "--snorm_top",
        type=int,
        default=None,
        help="adaptive s-norm: use the top N cohort scores",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the cohort draw (default 0)",
    )
    p.add_argument(
        "--batch_size",
        type=int,
        default=32,
        help="utterances embedded per batch (default 32)",
    )
    p.add_argument(
        "--device",
        default=None,
        help="cpu, cuda, cuda:0 ... (default: cuda if present)",
    )
    return p.parse_args(argv)


def load_model(args: argparse.Namespace) -> DeepSpeaker:
    """Loads ``--model`` (or the newest export), offline."""
    folder = Path(args.model) if args.model else latest_export(args.results)
    check_export_folder(folder)
    if args.device and args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"--device {args.device}: no CUDA device here")
    run_opts = {"device": args.device} if args.device else None
    model = DeepSpeaker.from_hparams(source=folder, run_opts=run_opts)
    model.folder = folder
    print(
        f"model: {folder} (threshold {model.threshold:.4f}: cosine "
        "similarity above it means same speaker)"
    )
    return model


def _embed(model: DeepSpeaker, paths: list[Path], batch_size: int):
    start = time.perf_counter()
    embs = model.encode_files(paths, batch_size=batch_size)
    return embs, time.perf_counter() - start


def _stats_lines(name: str, scores: torch.Tensor, threshold: float) -> list:
    sim = summarize(scores)
    dist = summarize(1.0 - scores)
    accepted = int((scores > threshold).sum())
    verdict = "above" if sim["mean"] > threshold else "not above"
    fmt = "mean {mean:.4f}  std {std:.4f}  min {min:.4f}  max {max:.4f}"
    return [
        f"{name} over {sim['n']} pairs:",
        f"  cosine similarity        : {fmt.format(**sim)}",
        f"  cosine distance (1 - sim): {fmt.format(**dist)}",
        f"  accepted as same speaker at threshold {threshold:.4f}: "
        f"{accepted}/{sim['n']} pairs ({100 * accepted / sim['n']:.1f}%); "
        f"mean similarity is {verdict} the threshold",
    ]


def speaker_mode(args: argparse.Namespace) -> int:
    """``--spk A,B``: SAN (A != B) or SAP (A = B) statistics."""
    ids = [s.strip() for s in args.spk.split(",") if s.strip()]
    if len(ids) == 1:
        ids = ids * 2
    if len(ids) != 2:
        raise UserError(f"--spk takes one or two speaker ids, got {args.spk!r}")
    spk2wavs = speaker_utterances(manifest_utterances(args.csv))
    for spk in ids:
        if spk not in spk2wavs:
            known = sorted(spk2wavs)
            raise UserError(
                f"unknown speaker {spk!r} in {args.csv}; valid ids "
                f"({len(known)}) include {', '.join(known[:5])}"
            )
    a, b = ids
    if a == b and len(spk2wavs[a]) < 2:
        raise UserError(
            f"speaker {a!r} has only 1 utterance in {args.csv}; SAP needs "
            "at least 2 (pick another speaker)"
        )
    model = load_model(args)
    paths = spk2wavs[a] + ([] if a == b else spk2wavs[b])
    embs, _ = _embed(model, paths, args.batch_size)
    emb_a = embs[: len(spk2wavs[a])]
    if a == b:
        scores = pair_scores(emb_a)
        print(f"speaker {a}: {len(spk2wavs[a])} utterances")
        name = "SAP (anchor-positive, same speaker)"
    else:
        scores = pair_scores(emb_a, embs[len(spk2wavs[a]) :])
        print(
            f"speaker A {a}: {len(spk2wavs[a])} utterances; "
            f"speaker B {b}: {len(spk2wavs[b])} utterances"
        )
        name = "SAN (anchor-negative, A x B)"
    print("\n".join(_stats_lines(name, scores, model.threshold)))
    return 0


def _cohort(args, model, exclude: set[str]) -> torch.Tensor:
    cohort_csv = (
        Path(args.cohort_csv)
        if args.cohort_csv
        else Path(args.csv).parent / "train.csv"
    )
    utts = manifest_utterances(cohort_csv)
    pool = sorted(u for u in utts if u not in exclude)
    if len(pool) < 2:
        raise UserError(f"s-norm needs 2+ cohort utterances in {cohort_csv}")
    if args.cohort_size < 2:
        raise UserError("--cohort_size must be at least 2")
    chosen = random.Random(args.seed).sample(
        pool, min(args.cohort_size, len(pool))
    )
    print(f"s-norm cohort: {len(chosen)} utterances of {cohort_csv}")
    embs, _ = _embed(model, [utts[u][1] for u in chosen], args.batch_size)
    return embs


def trials_mode(args: argparse.Namespace) -> int:
    """Scores a trials file; writes scores, report and plots."""
    trials_path = (
        Path(args.trials)
        if args.trials
        else Path(args.csv).parent / "trials.txt"
    )
    trials = read_trials(trials_path)
    utts = manifest_utterances(args.csv)
    needed = sorted({u for _, e, t in trials for u in (e, t)})
    unknown = [u for u in needed if u not in utts]
    if unknown:
        raise UserError(
            f"{len(unknown)} trial utterance(s) of {trials_path} are not in "
            f"{args.csv} (e.g. {unknown[0]}); give the matching --csv"
        )
    model = load_model(args)
    embs, seconds = _embed(model, [utts[u][1] for u in needed], args.batch_size)
    embeddings = dict(zip(needed, embs, strict=True))
    raw = score_trials(trials, embeddings)
    labels = [label for label, _, _ in trials]
    report = {
        "model": str(model.folder),
        "csv": str(args.csv),
        "trials": str(trials_path),
        "n_trials": len(trials),
        "n_utterances": len(needed),
        "embedding_seconds": round(seconds, 3),
        "threshold": model.threshold,
    }
    raw_metrics = verification_metrics(labels, raw)
    lab = torch.tensor(labels).bool()
    report["at_threshold"] = {
        "false_reject_rate": float(
            (raw[lab] <= model.threshold).float().mean()
        ),
        "false_accept_rate": float(
            (raw[~lab] > model.threshold).float().mean()
        ),
    }
    scores, metrics = raw, raw_metrics
    if args.snorm:
        cohort = _cohort(args, model, set(needed))
        scores = snorm_scores(trials, embeddings, cohort, args.snorm_top)
        metrics = verification_metrics(labels, scores)
        report["raw"] = raw_metrics
        report["snorm"] = {
            "cohort_size": len(cohort),
            "top_n": args.snorm_top,
            "seed": args.seed,
        }
    report.update(metrics)
    report["score"] = "s-norm" if args.snorm else "cosine similarity"

    out = (
        Path(args.out)
        if args.out
        else (
            Path(model.folder).absolute().parent
            / ("verify_snorm" if args.snorm else "verify")
        )
    )
    out.mkdir(parents=True, exist_ok=True)
    write_scores(out / "scores.txt", trials, scores)
    kind = "s-norm score" if args.snorm else "cosine similarity"
    plot_score_histograms(
        labels,
        scores,
        out / "score_hist.png",
        threshold=None if args.snorm else model.threshold,
        title=f"{kind}: {len(trials)} trials",
    )
    plot_det(
        labels,
        scores,
        out / "det.png",
        title=f"DET ({kind}), EER {100 * metrics['eer']:.2f}%",
    )
    write_json(out / "report.json", report)

    print(
        f"{len(trials)} trials ({metrics['n_target']} target, "
        f"{metrics['n_nontarget']} non-target) over {len(needed)} "
        f"utterances of {args.csv}; scores: {kind}"
    )
    if args.snorm:
        print(f"raw cosine EER {100 * raw_metrics['eer']:.2f}%")
    print(
        f"EER            {100 * metrics['eer']:.2f}% "
        f"(threshold {metrics['eer_threshold']:.4f})"
    )
    for p in (0.01, 0.05):
        print(f"minDCF({p:<4})   {metrics[f'min_dcf_{p}']:.4f}")
    at = report["at_threshold"]
    print(
        f"at the stored threshold {model.threshold:.4f} (cosine): "
        f"FRR {100 * at['false_reject_rate']:.2f}%, "
        f"FAR {100 * at['false_accept_rate']:.2f}%"
    )
    for name in ("scores.txt", "report.json", "score_hist.png", "det.png"):
        print(f"wrote {out / name}")
    return 0


def identify_mode(args: argparse.Namespace) -> int:
    """``--wav FILE --enrol CSV_or_DIR``: the closest enrolled speakers."""
    if not args.enrol:
        raise UserError("--wav needs --enrol CSV_or_DIR (enrolled speakers)")
    enrol = Path(args.enrol)
    if enrol.is_dir():
        spk2wavs = enrolment_folder(enrol)
    elif enrol.is_file():
        spk2wavs = speaker_utterances(manifest_utterances(enrol))
    else:
        raise UserError(f"enrolment CSV or folder not found: {enrol}")
    query = Path(args.wav).resolve()
    spk2wavs = {
        spk: kept
        for spk, wavs in spk2wavs.items()
        if (kept := [w for w in wavs if Path(w).resolve() != query])
    }
    if not spk2wavs:
        raise UserError(f"no enrolment audio in {enrol} besides {args.wav}")
    model = load_model(args)
    test = model.encode_file(args.wav)  # fails early on a bad file
    speakers, spk_embs = speaker_models(model, spk2wavs, args.batch_size)
    scores = DeepSpeaker.similarity(spk_embs, test.unsqueeze(0))
    order = torch.argsort(scores, descending=True)[: max(args.top, 1)]
    print(f"{args.wav} vs {len(speakers)} enrolled speakers of {enrol}:")
    for rank, i in enumerate(order.tolist(), start=1):
        s = float(scores[i])
        mark = "accept" if s > model.threshold else "below threshold"
        print(f"  {rank}. {speakers[i]:<20} cosine {s:.4f}  ({mark})")
    best = float(scores[order[0]])
    if best > model.threshold:
        print(f"speaker: {speakers[int(order[0])]}")
    else:
        print(
            f"speaker: unknown (best score {best:.4f} <= threshold "
            f"{model.threshold:.4f})"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    """Runs the mode the arguments ask for."""
    args = parse_args(argv)
    if args.batch_size < 1:
        raise UserError("--batch_size must be at least 1")
    if args.enrol and not args.wav:
        raise UserError("--enrol goes with --wav FILE")
    if (args.spk or args.wav) and (args.snorm or args.out):
        raise UserError("--snorm and --out go with the trials mode only")
    if args.spk:
        return speaker_mode(args)
    if args.wav:
        return identify_mode(args)
    return trials_mode(args)


if __name__ == "__main__":
    sys.exit(run_cli(main))
