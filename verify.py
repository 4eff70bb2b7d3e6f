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
- ``python verify.py --pair A.wav B.wav``: compares two files: cosine,
  calibrated LLR, posterior of "same speaker" at ``--prior``, the
  threshold that decided and the verdict.
- ``python verify.py --calibrate TRIALS``: scores a labelled trials file
  (over the utterances of ``--csv``) and writes the cosine -> LLR
  calibration and the operating points (EER, FAR 1%, FAR 0.1%) fitted on
  it into the model's ``config.json``, replacing those of the export.

A calibrated model decides at its EER threshold unless ``--far 0.01``
picks the threshold of a stored false-accept rate; LLRs and posteriors
are shown where a model has a calibration.

The model is rebuilt from the export's ``config.json`` and weights-only
checkpoints: nothing in the folder runs.  ``--trust_yaml`` loads it
through its ``hyperparams.yaml`` instead (``DeepSpeaker.from_hparams``;
HyperPyYAML builds whatever objects that file names), for folders you
trust that predate ``config.json``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

from deep_speaker_sb import evaluation, register, scoring
from deep_speaker_sb.calibration import DEFAULT_PRIOR, STORED_THRESHOLD
from deep_speaker_sb.cli import run_cli
from deep_speaker_sb.defaults import PREP_FOLDER, TRIPLET_RESULTS
from deep_speaker_sb.errors import ConfigError
from deep_speaker_sb.export import (
    check_export_folder,
    latest_export,
    write_score_calibration,
)
from deep_speaker_sb.inference import (
    BACKENDS,
    Crops,
    DeepSpeaker,
    require_config,
)
from deep_speaker_sb.utils import printable

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
        "--spk",
        action="append",
        help="two test speaker ids 'A,B' (SAN) or 'A,A' / 'A' (SAP); "
        "given twice (--spk A --spk B), each value is one id as it is, "
        "commas included",
    )
    mode.add_argument(
        "--trials", help="trials file (default: trials.txt next to --csv)"
    )
    mode.add_argument("--wav", help="audio file to identify (with --enrol)")
    mode.add_argument(
        "--pair",
        nargs=2,
        metavar=("WAV_A", "WAV_B"),
        help="compare two audio files: score, LLR, posterior, verdict",
    )
    mode.add_argument(
        "--calibrate",
        metavar="TRIALS",
        help="fit the score calibration and operating points on this "
        "labelled trials file (utterances of --csv) and write them into "
        "the model's config.json",
    )
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
        "--far",
        type=float,
        default=None,
        help="decide at the model's threshold for this false-accept rate "
        "(e.g. 0.01; default: its EER threshold)",
    )
    p.add_argument(
        "--prior",
        type=float,
        default=DEFAULT_PRIOR,
        help="prior probability of 'same speaker' of the posteriors shown "
        f"(default {DEFAULT_PRIOR})",
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
    p.add_argument(
        "--trust_yaml",
        action="store_true",
        help="load the model by running the export's hyperparams.yaml "
        "(only for folders you trust; needed for exports without "
        "config.json); by default it is rebuilt from config.json",
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
    far = getattr(args, "far", None)
    if args.trust_yaml:  # runs the folder's YAML: the user trusts it
        model = DeepSpeaker.from_hparams(
            source=folder, run_opts=run_opts, backend=args.backend, far=far
        )
    else:  # no code of the folder runs
        require_config(folder)
        model = DeepSpeaker.from_config(
            folder, backend=args.backend, run_opts=run_opts, far=far
        )
    print(
        f"model: {printable(folder)} (threshold {model.threshold:.4f}: cosine "
        "similarity above it means same speaker)"
    )
    point = model.operating_point
    if point.name != STORED_THRESHOLD:
        print(f"decision: {point.describe()}")
        if not point.reliable:
            print(
                f"warning: the {point.name} threshold was fitted on too "
                "few non-target trials to trust its FAR",
                file=sys.stderr,
            )
    if model.calibration is not None:
        cal = model.calibration
        print(
            f"calibration: {cal.formula()} (fitted on {cal.trials} "
            f"{cal.fitted_on})"
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
        names = ", ".join(printable(e["wav"]) for e in entries[:5])
        more = f" and {len(entries) - 5} more" if len(entries) > 5 else ""
        print(
            f"warning: {len(entries)} file(s) hold no speech and are left "
            f"out{left_out}: {names}{more}",
            file=sys.stderr,
        )


def speaker_ids(values: list[str]) -> tuple[str, str]:
    """The two speakers of ``--spk``: one value is split at commas
    ('A,B', 'A'); two values (``--spk A --spk B``) are taken as they are,
    so that an id holding a comma can be named.

    Example
    -------
    >>> speaker_ids(["A,B"]), speaker_ids(["A"])
    (('A', 'B'), ('A', 'A'))
    >>> speaker_ids(["X,1", "Y"])
    ('X,1', 'Y')
    """
    if len(values) == 1:
        ids = [s.strip() for s in values[0].split(",") if s.strip()]
        if len(ids) == 1:
            ids = ids * 2
    else:
        ids = [s.strip() for s in values]
    if len(ids) != 2 or not all(ids):
        given = " ".join(f"--spk {v!r}" for v in values)
        raise ConfigError(
            f"--spk takes one or two speaker ids ('A,B', or --spk A "
            f"--spk B for ids holding a comma), got {given}"
        )
    return ids[0], ids[1]


def speaker_mode(args: argparse.Namespace) -> int:
    """``--spk A,B``: SAN (A != B) or SAP (A = B) statistics."""
    a, b = speaker_ids(args.spk)
    utts_a, utts_b = evaluation.speaker_pair_utterances(args.csv, a, b)
    model = load_model(args)
    if a == b:
        stats = evaluation.speaker_pair_statistics(
            model, utts_a, batch_size=args.batch_size
        )
        print(f"speaker {printable(a)}: {stats['n_a']} utterances")
        name = "SAP (anchor-positive, same speaker)"
    else:
        stats = evaluation.speaker_pair_statistics(
            model, utts_a, utts_b, batch_size=args.batch_size
        )
        print(
            f"speaker A {printable(a)}: {stats['n_a']} utterances; "
            f"speaker B {printable(b)}: {stats['n_b']} utterances"
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
            f"{printable(cohort.csv)}{adaptive}"
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
        durations=evaluation.manifest_durations(csv),
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
        f"{report['n_utterances']} utterances of {printable(args.csv)}; "
        f"scores: {kind}"
    )
    if args.snorm:
        print(f"raw cosine EER {100 * report['raw']['eer']:.2f}%")
    print(
        f"EER            {100 * report['eer']:.2f}% "
        f"(threshold {report['eer_threshold']:.4f})"
    )
    for p in scoring.P_TARGETS:
        print(f"minDCF({p:<4})   {report[f'min_dcf_{p}']:.4f}")
    cosine = report.get("raw", report)
    cllr = cosine.get("cllr")
    print(
        f"min-Cllr       {cosine['min_cllr']:.4f} (cosine scores)"
        + ("" if cllr is None else f"; Cllr {cllr:.4f} (calibrated LLRs)")
    )
    for name, bucket in report.get("eer_by_duration", {}).items():
        eer = bucket["eer"]
        text = "n/a" if eer is None else f"{100 * eer:.2f}%"
        print(
            f"EER test {name:<5} {text} ({bucket['n_target']} target, "
            f"{bucket['n_nontarget']} non-target)"
        )
    at = report["at_threshold"]
    print(
        f"at the stored threshold {model.threshold:.4f} (cosine): "
        f"FRR {100 * at['false_reject_rate']:.2f}%, "
        f"FAR {100 * at['false_accept_rate']:.2f}%"
    )
    for name, point in report.get("operating_points", {}).items():
        print(
            f"  {name:<10} threshold {point['threshold']:.4f}: "
            f"FRR {100 * point['false_reject_rate']:.2f}%, "
            f"FAR {100 * point['false_accept_rate']:.2f}% here"
        )
    for path in written:
        print(f"wrote {printable(path)}")
    return 0


def pair_mode(args: argparse.Namespace) -> int:
    """``--pair A B``: the verdict on two files."""
    path_a, path_b = args.pair
    model = load_model(args)
    verdict = model.verify_pair(path_a, path_b, prior=args.prior)
    point = verdict.point
    print(f"{path_a} vs {path_b}:")
    print(f"  cosine     {verdict.cosine:.4f}")
    if verdict.llr is None:
        how = "the model has no calibration; add it with --calibrate TRIALS"
        print(f"  LLR        n/a ({how})")
        print("  posterior  n/a")
    else:
        print(
            f"  LLR        {verdict.llr:+.3f} (natural log; > 0 favours "
            "same speaker)"
        )
        print(
            f"  posterior  {verdict.posterior:.4f} P(same speaker) at "
            f"prior {verdict.prior:g}"
        )
    print(f"  threshold  {point.describe()}")
    relation = ">" if verdict.same_speaker else "<="
    answer = "same speaker" if verdict.same_speaker else "different speakers"
    print(
        f"verdict: {answer} (cosine {verdict.cosine:.4f} {relation} "
        f"{point.name} threshold {point.threshold:.4f})"
    )
    return 0


def calibrate_mode(args: argparse.Namespace) -> int:
    """``--calibrate TRIALS``: fits the calibration and operating points
    on labelled trials and writes them into the model's config.json."""
    trials_path = Path(args.calibrate)
    model = load_model(args)
    result, fitted = evaluation.fit_calibration(
        model,
        trials_path,
        args.csv,
        fitted_on=f"trials of {trials_path}",
        batch_size=args.batch_size,
    )
    report = result.report
    _warn_no_speech(
        report["no_speech"], f" with their {report['trials_left_out']} trials"
    )
    cal = fitted.calibration
    print(
        f"{report['n_trials']} trials ({report['n_target']} target, "
        f"{report['n_nontarget']} non-target) of {trials_path}"
    )
    if report.get("cllr") is not None:
        print(f"Cllr with the model's calibration: {report['cllr']:.4f}")
    print(
        f"fitted: {cal.formula()}; Cllr "
        f"{cal.cllr:.4f}, min-Cllr {cal.min_cllr:.4f} on these trials"
    )
    for point in fitted.points.values():
        print(f"  {point.describe()}")
    path = write_score_calibration(model.folder, fitted)
    print(f"wrote {path}")
    return 0


def identify_mode(args: argparse.Namespace) -> int:
    """``--wav FILE --enrol CSV_or_DIR``: the closest enrolled speakers."""
    if not args.enrol:
        raise ConfigError("--wav needs --enrol CSV_or_DIR (enrolled speakers)")
    spk2wavs = register.enrolment_speakers(args.enrol, exclude=args.wav)
    model = load_model(args)
    # every file speech-checked (encode_files): no speaker for silence,
    # noise or tones, no silent enrolment file pulling a speaker's mean
    candidates = register.identify(
        model, args.wav, spk2wavs, top=args.top, batch_size=args.batch_size
    )
    print(
        f"{printable(args.wav)} vs {len(spk2wavs)} enrolled speakers of "
        f"{printable(args.enrol)}:"
    )
    return _print_candidates(candidates, model.threshold, model, args.prior)


def register_mode(args: argparse.Namespace) -> int:
    """``--wav FILE --register REGISTER``: identification against a saved
    register (no enrolment file is embedded)."""
    saved = register.SpeakerRegister.load(args.register)  # before the model
    model = load_model(args)
    saved.check_model(model.model_id, args.register)
    candidates = register.identify(  # speech-checked
        model, args.wav, saved, top=args.top
    )
    print(
        f"{printable(args.wav)} vs {len(saved.speakers)} enrolled speakers "
        f"of {printable(args.register)}:"
    )
    return _print_candidates(candidates, model.threshold, model, args.prior)


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
    for spk, wavs in spk2wavs.items():
        model.enrol(spk, wavs, batch_size=args.batch_size)
    # load -> update -> save under the register's lock: an enrolment into
    # the same file at the same time adds its speakers too
    saved = model.add_to_register(path)
    counts = dict(zip(saved.speakers, saved.counts, strict=True))
    added = [s for s, wavs in spk2wavs.items() if counts[s] == len(wavs)]
    print(
        f"enrolled {sum(len(w) for w in spk2wavs.values())} files of "
        f"{len(spk2wavs)} speakers of {printable(args.enrol)} "
        f"({len(added)} new, "
        f"{len(spk2wavs) - len(added)} updated)"
    )
    print(
        f"wrote {printable(path)}: {len(saved.speakers)} speakers, "
        f"{sum(saved.counts)} files"
    )
    return 0


def _print_candidates(
    candidates: list[register.Candidate],
    threshold: float,
    model: object = None,
    prior: float = DEFAULT_PRIOR,
) -> int:
    """Prints the ranked speakers and the answer; returns 0.

    With a calibrated ``model`` each line also gives the LLR and the
    posterior at ``prior``, and the answer names the operating point."""
    sc = getattr(model, "score_calibration", None)
    point = getattr(model, "operating_point", None)
    for rank, c in enumerate(candidates, start=1):
        mark = "accept" if c.accepted else "below threshold"
        extra = ""
        if sc is not None and sc.calibration is not None:
            v = sc.verdict(c.score, point, prior)
            extra = f"  LLR {v.llr:+.3f}  P(same) {v.posterior:.4f}"
        name = printable(c.speaker)
        print(f"  {rank}. {name:<20} cosine {c.score:.4f}{extra}  ({mark})")
    best = candidates[0]
    named = point is not None and point.name != STORED_THRESHOLD
    which = f"{point.name} threshold" if named else "threshold"
    if best.accepted:
        print(
            f"speaker: {printable(best.speaker)}"
            + (f" (cosine > {which} {threshold:.4f})" if named else "")
        )
    else:
        print(
            f"speaker: unknown (best score {best.score:.4f} <= {which} "
            f"{threshold:.4f})"
        )
    if sc is not None and sc.calibration is not None:
        print(f"(P(same) at prior {prior:g})")
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
    other = args.spk or args.wav or args.enrol_save or args.pair
    if (other or args.calibrate) and (
        args.snorm or args.out or args.crops is not None
    ):
        raise ConfigError(
            "--snorm, --crops and --out go with the trials mode only"
        )
    if args.snorm_top is not None and not args.snorm:
        raise ConfigError("--snorm_top N goes with --snorm")
    if args.snorm_top is not None and args.snorm_top < 1:
        raise ConfigError("--snorm_top must be at least 1")
    if not 0.0 < args.prior < 1.0:
        raise ConfigError(f"--prior must lie in (0, 1), got {args.prior}")
    if args.far is not None and not 0.0 < args.far < 1.0:
        raise ConfigError(f"--far must lie in (0, 1), got {args.far}")
    if args.far is not None and args.calibrate:
        raise ConfigError(
            "--far picks a stored threshold; --calibrate fits them (FAR "
            "0.01 and 0.001): give one of the two"
        )
    if args.calibrate:
        return calibrate_mode(args)
    if args.pair:
        return pair_mode(args)
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
