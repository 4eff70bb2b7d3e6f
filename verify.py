#!/usr/bin/env python3
"""Speaker verification with a trained Deep Speaker export.

The modes (the model is the newest ``results/triplet/*/pretrained``, or
``<--results>/*/pretrained``, unless ``--model DIR`` is given):

- ``python verify.py`` / ``python verify.py --trials PATH``: scores every
  trial of the prepared ``trials.txt`` (one embedding per utterance), prints
  EER and minDCF (p_target 0.01, 0.05) and writes ``scores.txt``,
  ``report.json``, ``score_hist.png`` and ``det.png`` into ``--out``.
  ``--snorm`` adds symmetric score normalization against a cohort of
  training utterances (``--snorm_top N``: adaptive s-norm, AS-norm, each
  side's statistics over its N closest cohort utterances);
  ``--crops N --crop_len S`` embeds each file longer than S seconds as the
  mean of N evenly spaced crops of S seconds.
- ``python verify.py --spk A,B``: cosine similarity over every pair of
  utterances of test speakers A and B (SAN, anchor-negative), or over the
  distinct pairs of A's utterances when A = B (SAP, anchor-positive).
- ``python verify.py --wav FILE --enrol CSV_or_DIR``: the closest enrolled
  speakers of a recording (or "unknown" below the threshold); a speaker's
  model is the mean embedding of its files, the query file itself left out.
- ``python verify.py --enrol_save REGISTER --enrol CSV_or_DIR``: enrols the
  speakers once into a register file (each speaker's mean embedding, its
  file count and the model's identity); enrolling into an existing
  register adds new speakers and updates known ones (a running mean).
- ``python verify.py --wav FILE --register REGISTER``: identifies against
  a saved register without re-embedding the enrolment files (the register
  must have been made with the same model).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from deep_speaker_sb import evaluation, register, scoring
from deep_speaker_sb.cli import run_cli
from deep_speaker_sb.defaults import PREP_FOLDER, TRIPLET_RESULTS
from deep_speaker_sb.errors import ConfigError
from deep_speaker_sb.export import check_export_folder, latest_export
from deep_speaker_sb.inference import BACKENDS, Crops, DeepSpeaker

DEFAULT_CSV = f"{PREP_FOLDER}/test.csv"
DEFAULT_RESULTS = TRIPLET_RESULTS


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
        "--enrol_save",
        metavar="REGISTER",
        help="enrol the speakers of --enrol into this register file "
        "(created, or updated)",
    )
    p.add_argument(
        "--register",
        metavar="REGISTER",
        help="saved register to identify --wav against (instead of --enrol)",
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
        metavar="N",
        help="adaptive s-norm (AS-norm, with --snorm): each side's mean "
        "and std over its N highest cohort scores (e.g. 100 with "
        "--cohort_size 1000; N >= the cohort: plain s-norm)",
    )
    p.add_argument(
        "--crops",
        type=int,
        default=None,
        metavar="N",
        help="embed each trial file longer than --crop_len as the "
        "L2-normalized mean of N evenly spaced crops (default: whole "
        "files)",
    )
    p.add_argument(
        "--crop_len",
        type=float,
        default=3.0,
        metavar="S",
        help="length of a --crops crop in seconds (default 3.0)",
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
    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="torch",
        help="torch (default), or the export's ONNX graph in onnxruntime "
        "on the CPU: onnx (fp32) or onnx-int8",
    )
    return p.parse_args(argv)


def load_model(args: argparse.Namespace) -> DeepSpeaker:
    """Loads ``--model`` (or the newest export)."""
    folder = Path(args.model) if args.model else latest_export(args.results)
    check_export_folder(folder)
    if args.device and args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {args.device}: no CUDA device here")
    device = args.device or ("cpu" if args.backend != "torch" else None)
    run_opts = {"device": device} if device else None
    model = DeepSpeaker.from_hparams(
        source=folder, run_opts=run_opts, backend=args.backend
    )
    model.folder = folder
    print(
        f"model: {folder} (threshold {model.threshold:.4f}: cosine "
        "similarity above it means same speaker)"
    )
    return model


def _stats_lines(name: str, stats: dict) -> list[str]:
    sim, dist, n = stats["similarity"], stats["distance"], stats["n"]
    threshold, accepted = stats["threshold"], stats["accepted"]
    verdict = "above" if sim["mean"] > threshold else "not above"
    fmt = "mean {mean:.4f}  std {std:.4f}  min {min:.4f}  max {max:.4f}"
    return [
        f"{name} over {n} pairs:",
        f"  cosine similarity        : {fmt.format(**sim)}",
        f"  cosine distance (1 - sim): {fmt.format(**dist)}",
        f"  accepted as same speaker at threshold {threshold:.4f}: "
        f"{accepted}/{n} pairs ({100 * accepted / n:.1f}%); "
        f"mean similarity is {verdict} the threshold",
    ]


def _warn_no_speech(entries: list[dict], left_out: str) -> None:
    """One warning line naming the files the speech check left out."""
    if entries:
        names = ", ".join(e["wav"] for e in entries[:5])
        more = f" and {len(entries) - 5} more" if len(entries) > 5 else ""
        print(
            f"warning: {len(entries)} file(s) hold no speech and are left "
            f"out{left_out}: {names}{more}",
            file=sys.stderr,
        )


def speaker_mode(args: argparse.Namespace) -> int:
    """``--spk A,B``: SAN (A != B) or SAP (A = B) statistics."""
    ids = [s.strip() for s in args.spk.split(",") if s.strip()]
    if len(ids) == 1:
        ids = ids * 2
    if len(ids) != 2:
        raise ConfigError(
            f"--spk takes one or two speaker ids, got {args.spk!r}"
        )
    a, b = ids
    utts_a, utts_b = evaluation.speaker_pair_utterances(args.csv, a, b)
    model = load_model(args)
    if a == b:
        stats = evaluation.speaker_pair_statistics(
            model, utts_a, batch_size=args.batch_size
        )
        print(f"speaker {a}: {stats['n_a']} utterances")
        name = "SAP (anchor-positive, same speaker)"
    else:
        stats = evaluation.speaker_pair_statistics(
            model, utts_a, utts_b, batch_size=args.batch_size
        )
        print(
            f"speaker A {a}: {stats['n_a']} utterances; "
            f"speaker B {b}: {stats['n_b']} utterances"
        )
        name = "SAN (anchor-negative, A x B)"
    _warn_no_speech(stats["no_speech"], " with their pairs")
    print("\n".join(_stats_lines(name, stats)))
    return 0


def _check_out_folder(out: Path) -> None:
    """Makes ``--out`` (or says in one line why it cannot be used)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: {exc.strerror}") from None
    if not os.access(out, os.W_OK):
        raise ConfigError(f"--out {out}: not writable")


def trials_mode(args: argparse.Namespace) -> int:
    """Scores a trials file; writes scores, report and plots."""
    csv = Path(args.csv)
    trials_path = (
        Path(args.trials) if args.trials else csv.parent / "trials.txt"
    )
    trials, utts = evaluation.load_trials(trials_path, csv)
    crops = None if args.crops is None else Crops(args.crops, args.crop_len)
    if args.out:  # checked before any embedding work
        _check_out_folder(Path(args.out))
    cohort = None
    if args.snorm:
        cohort = evaluation.draw_cohort(
            args.cohort_csv or csv.parent / "train.csv",
            args.cohort_size,
            seed=args.seed,
            exclude=list(utts),
        )
    model = load_model(args)
    if cohort is not None:
        adaptive = (
            f", adaptive: top {args.snorm_top} per side"
            if args.snorm_top
            else ""
        )
        print(
            f"s-norm cohort: {len(cohort.utterances)} utterances of "
            f"{cohort.csv}{adaptive}"
        )
    if crops is not None:
        print(
            f"crops: files longer than {crops.seconds:g} s embedded as the "
            f"mean of {crops.n} crops"
        )
    result = evaluation.evaluate_trials(
        model,
        trials,
        utts,
        cohort=cohort,
        top_n=args.snorm_top,
        batch_size=args.batch_size,
        crops=crops,
        info={
            "model": str(model.folder),
            "csv": str(args.csv),
            "trials": str(trials_path),
        },
    )
    out = (
        Path(args.out)
        if args.out
        else (
            Path(model.folder).absolute().parent
            / ("verify_snorm" if args.snorm else "verify")
        )
    )
    written = evaluation.write_evaluation(out, result)

    report = result.report
    _warn_no_speech(
        report["no_speech"], f" with their {report['trials_left_out']} trials"
    )
    kind = "s-norm score" if args.snorm else "cosine similarity"
    print(
        f"{report['n_trials']} trials ({report['n_target']} target, "
        f"{report['n_nontarget']} non-target) over "
        f"{report['n_utterances']} utterances of {args.csv}; scores: {kind}"
    )
    if args.snorm:
        print(f"raw cosine EER {100 * report['raw']['eer']:.2f}%")
    print(
        f"EER            {100 * report['eer']:.2f}% "
        f"(threshold {report['eer_threshold']:.4f})"
    )
    for p in scoring.P_TARGETS:
        print(f"minDCF({p:<4})   {report[f'min_dcf_{p}']:.4f}")
    at = report["at_threshold"]
    print(
        f"at the stored threshold {model.threshold:.4f} (cosine): "
        f"FRR {100 * at['false_reject_rate']:.2f}%, "
        f"FAR {100 * at['false_accept_rate']:.2f}%"
    )
    for path in written:
        print(f"wrote {path}")
    return 0


def identify_mode(args: argparse.Namespace) -> int:
    """``--wav FILE --enrol CSV_or_DIR``: the closest enrolled speakers."""
    if not args.enrol:
        raise ConfigError("--wav needs --enrol CSV_or_DIR (enrolled speakers)")
    spk2wavs = register.enrolment_speakers(args.enrol, exclude=args.wav)
    model = load_model(args)
    model.check_speech(args.wav)  # no speaker for silence, noise, tones
    for wavs in spk2wavs.values():  # as --enrol_save: no silent enrolment
        for wav in wavs:
            model.check_speech(wav)
    candidates = register.identify(
        model, args.wav, spk2wavs, top=args.top, batch_size=args.batch_size
    )
    print(f"{args.wav} vs {len(spk2wavs)} enrolled speakers of {args.enrol}:")
    return _print_candidates(candidates, model.threshold)


def register_mode(args: argparse.Namespace) -> int:
    """``--wav FILE --register REGISTER``: identification against a saved
    register (no enrolment file is embedded)."""
    saved = register.SpeakerRegister.load(args.register)  # before the model
    model = load_model(args)
    saved.check_model(model.model_id, args.register)
    model.register = saved
    candidates = model.identify(args.wav, top=args.top)  # speech-checked
    print(
        f"{args.wav} vs {len(saved.speakers)} enrolled speakers of "
        f"{args.register}:"
    )
    return _print_candidates(candidates, model.threshold)


def enrol_save_mode(args: argparse.Namespace) -> int:
    """``--enrol_save REGISTER --enrol CSV_or_DIR``: enrols (or adds) the
    speakers into a register file, written atomically."""
    spk2wavs = register.enrolment_speakers(args.enrol)
    path = Path(args.enrol_save)
    if path.is_dir():
        raise ConfigError(f"--enrol_save {path} is a folder; give a file name")
    model = load_model(args)
    if path.exists():
        model.load_register(path)  # refuses another model's register
    known = set(model.register.speakers) if model.register else set()
    for spk, wavs in spk2wavs.items():
        model.enrol(spk, wavs, batch_size=args.batch_size)
    model.save_register(path)
    added = [s for s in spk2wavs if s not in known]
    print(
        f"enrolled {sum(len(w) for w in spk2wavs.values())} files of "
        f"{len(spk2wavs)} speakers of {args.enrol} ({len(added)} new, "
        f"{len(spk2wavs) - len(added)} updated)"
    )
    saved = model.register
    print(
        f"wrote {path}: {len(saved.speakers)} speakers, "
        f"{sum(saved.counts)} files"
    )
    return 0


def _print_candidates(
    candidates: list[register.Candidate], threshold: float
) -> int:
    """Prints the ranked speakers and the answer; returns 0."""
    for rank, c in enumerate(candidates, start=1):
        mark = "accept" if c.accepted else "below threshold"
        print(f"  {rank}. {c.speaker:<20} cosine {c.score:.4f}  ({mark})")
    best = candidates[0]
    if best.accepted:
        print(f"speaker: {best.speaker}")
    else:
        print(
            f"speaker: unknown (best score {best.score:.4f} <= threshold "
            f"{threshold:.4f})"
        )
    return 0


def _check_register_options(args: argparse.Namespace) -> None:
    """The combinations of --wav, --enrol, --enrol_save and --register."""
    if args.enrol_save and (args.wav or args.register):
        raise ConfigError(
            "--enrol_save REGISTER goes with --enrol CSV_or_DIR only; "
            "identify in a second call (--wav FILE --register REGISTER)"
        )
    if args.enrol_save and not args.enrol:
        raise ConfigError("--enrol_save needs --enrol CSV_or_DIR")
    if args.register and args.enrol:
        raise ConfigError("give --enrol or --register, not both")
    if args.register and not args.wav:
        raise ConfigError("--register goes with --wav FILE")
    if args.enrol and not (args.wav or args.enrol_save):
        raise ConfigError(
            "--enrol goes with --wav FILE or --enrol_save REGISTER"
        )


def main(argv: list[str] | None = None) -> int:
    """Runs the mode the arguments ask for."""
    args = parse_args(argv)
    if args.batch_size < 1:
        raise ConfigError("--batch_size must be at least 1")
    if args.top < 1:
        raise ConfigError("--top must be at least 1")
    _check_register_options(args)
    if (args.spk or args.wav or args.enrol_save) and (
        args.snorm or args.out or args.crops is not None
    ):
        raise ConfigError(
            "--snorm, --crops and --out go with the trials mode only"
        )
    if args.snorm_top is not None and not args.snorm:
        raise ConfigError("--snorm_top N goes with --snorm")
    if args.snorm_top is not None and args.snorm_top < 1:
        raise ConfigError("--snorm_top must be at least 1")
    if args.spk:
        return speaker_mode(args)
    if args.enrol_save:
        return enrol_save_mode(args)
    if args.wav and args.register:
        return register_mode(args)
    if args.wav:
        return identify_mode(args)
    return trials_mode(args)


if __name__ == "__main__":
    sys.exit(run_cli(main))
