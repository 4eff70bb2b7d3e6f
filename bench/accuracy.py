#!/usr/bin/env python3
"""Accuracy of the recipe's variants on a prepared benchmark corpus.

Runs the whole chain (softmax pre-training -> triplet training ->
``verify.py`` on the test trials) once per named variant and seed, at the
CPU training budget of the README, and prints one JSON line per scored
model: test EER, minDCF(0.01), the training minutes and the embedding
model's parameter count (``params``).  With ``--voices`` (the
``voices.json`` of ``bench/tts_corpus.py``) the EER is also given over the
trials between same-family (``eer_same``) and between cross-family
(``eer_cross``) test voices.

Usage::

    python bench/accuracy.py --prep_folder bench_data/tts8k \\
        --voices bench_data/tts_corpus/voices.json --out bench_data/accuracy
    python bench/accuracy.py ... --variants mfcc,augment,ecapa --seeds 1,2,3
    python bench/accuracy.py ... --scoring cosine,asnorm,crops

Variants (``--variants``, default all):

- ``mfcc``: the plain baseline, mean MFCC + cosine (no training);
- ``base``: the CPU-budget recipe; reported twice, as ``softmax`` (the
  softmax-only embeddings, ``pretrained_init/``) and ``softmax+triplet``
  (every other variant too, as ``<variant>, softmax`` and so on);
- ``augment``: ``base`` with on-the-fly augmentation in both stages;
- ``aam``: ``base`` with additive angular margin pre-training;
- ``stats``: ``base`` with mean + standard deviation pooling;
- ``all``: ``base`` with the three (augment, aam, stats);
- ``nonspeech``: ``base`` with ``--nonspeech_weight 1.0`` in pre-training;
- ``augment_nonspeech``: ``augment`` with ``--nonspeech_weight 1.0``;
- ``augment_seed2``: ``augment`` with ``--seed 2`` (both stages), kept
  for the runs made before ``--seeds`` (``--variants augment --seeds
  1986,2`` is the same thing in the seed layout);
- ``augment_real``: ``augment`` with SpecAugment masks and the channel
  simulation (``--spec_augment True --channel_sim True``, issue #18);
- ``augment_se_att``: ``augment`` with squeeze-excitation and attentive
  statistics pooling (``--se_reduction 8 --pooling attentive_stats``);
- ``ecapa``: the peer, SpeechBrain's ECAPA-TDNN
  (:class:`deep_speaker_sb.lobes.ecapa.EcapaTDNN`, CPU-budget width
  :data:`ECAPA_CHANNELS`, 128-dim embeddings, 0.69 M parameters against
  the ResCNN's 0.71 M) in ``hparams/softmax.yaml``'s place of the ResCNN
  (the rest of the YAML as it is: same data, features, augmentation,
  crops, batch, learning rates), trained with the AAM softmax for
  :data:`ECAPA_EPOCHS` epochs and no triplet stage (as ECAPA-TDNN is
  trained), scored from its best checkpoint (validation accuracy) with
  the functions ``verify.py`` calls (:func:`deep_speaker_sb.evaluation.
  evaluate_trials`): same trials, speech check, scoring and options;
- ``time2_se_att_bn``: ``time2_se_att`` with batch norm on the pooled
  statistics (``--pool_bn True``, both stages);
- ``time2_se_att_spk3`` / ``ecapa_spk3``: ``time2_se_att`` / ``ecapa``
  with ``--speaker_speeds "[90, 110]"`` in the softmax stage (each
  training speaker's speed-perturbed copies are classes of their own).

Seeds (``--seeds 1,2,3``): each (variant, seed) runs in ``<out>/<variant>/
seed<N>/`` with ``--seed N`` in both stages, and ``<out>/summary.json`` and
``<out>/summary.md`` give each model's mean, sample standard deviation and
min..max over the seeds (EER all / cross / same, minDCF(0.01), training
minutes).  Without ``--seeds`` a variant runs once, in ``<out>/<variant>/``,
with the YAML's seed (the layout of the runs before ``--seeds``).

Scoring (``--scoring``, default ``cosine``), each a row of its own, from the
same trained models: ``cosine`` (``verify.py`` as it is), ``asnorm``
(adaptive s-norm: ``--snorm --snorm_top K`` over a cohort of
``--cohort_size`` training utterances) and ``crops`` (each test file
longer than ``--crop_len`` seconds embedded as the mean of ``--crops``
crops).

Every run is resumed, not redone, when the command is run again; a run
folder remembers its training options (``options.json``) and refuses
other ones (``--epochs_scale`` included: give another ``--out``).  A
variant that changes the triplet stage only (:data:`TRIPLET_ONLY`, e.g.
``time2_se_att_p32``) starts from a copy of the softmax stage another
variant trained with the same options and seed in the same ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.baseline_eer import mean_mfcc_vectors  # noqa: E402
from deep_speaker_sb.dataio import read_manifest, utterances  # noqa: E402
from deep_speaker_sb.renames import add_renamed_option  # noqa: E402
from deep_speaker_sb.scoring import (  # noqa: E402
    read_scores,
    read_trials,
    score_trials,
    verification_metrics,
)
from deep_speaker_sb.utils import atomic_write, write_json  # noqa: E402

#: The CPU training budget (README): model width, crops and epochs that
#: train prep -> softmax -> triplet on the benchmark corpus on 2 CPU cores.
FEATURES = ["--n_mels", "40", "--emb_dim", "128"]
MODEL = [
    "--channels", "[16, 32, 64, 128]",
    "--blocks_per_stage", "1",
    *FEATURES,
]  # fmt: skip
SOFTMAX = [
    "--number_of_epochs", "12",
    "--batch_size", "32",
    "--sentence_len", "2.0",
    "--lr", "0.003",
    "--lr_final", "0.0003",
]  # fmt: skip
TRIPLET = [
    "--number_of_epochs", "10",
    "--speakers_per_batch", "16",
    "--n_per_speaker", "4",
    "--sentence_len", "2.0",
    "--lr", "0.001",
    "--lr_final", "0.0001",
]  # fmt: skip
COMMON_OPTIONS = ["--num_workers", "0", "--device", "cpu"]
FLAGS = ["--noprogressbar"]
COMMON = [*COMMON_OPTIONS, *FLAGS]

#: Variant -> (extra options of both stages, extra softmax-only options).
#: Each differs from ``base`` in one thing, but ``all``.
NO_AUGMENT = ["--augment", "False"]
AAM = ["--pretrain_loss", "aam"]
#: Squeeze-excitation blocks and attentive statistics pooling, augmented.
SE_ATT = [
    "--augment", "True",
    "--se_reduction", "8",
    "--pooling", "attentive_stats",
]  # fmt: skip
VARIANTS: dict[str, tuple[list[str], list[str]]] = {
    "base": (NO_AUGMENT, []),
    "augment": (["--augment", "True"], []),
    "aam": (NO_AUGMENT, AAM),
    "stats": ([*NO_AUGMENT, "--pooling", "stats"], []),
    # the three together
    "all": (["--augment", "True", "--pooling", "stats"], AAM),
    # generated non-speech pushed away from the speakers (issue #10)
    "nonspeech": (NO_AUGMENT, ["--nonspeech_weight", "1.0"]),
    "augment_nonspeech": (["--augment", "True"], ["--nonspeech_weight", "1.0"]),
    # a second seed of augment, from before --seeds (same as
    # --variants augment --seeds 2, in the old layout)
    "augment_seed2": (["--augment", "True", "--seed", "2"], []),
    # issue #18's training-side options for real voices: SpecAugment masks
    # and the channel simulation (EQ, level/clipping, low-bitrate codec,
    # loudness) on top of augment
    "augment_real": (
        ["--augment", "True", "--spec_augment", "True"]
        + ["--channel_sim", "True"],
        [],
    ),
    # issue #18's lobe options: squeeze-excitation and attentive pooling
    "augment_se_att": (SE_ATT, []),
    # ... with the AAM softmax (the ECAPA-TDNN peer's loss) as the first
    # stage, the triplet stage after it as usual
    "augment_se_att_aam": (SE_ATT, AAM),
    # ... twice the CPU budget's width (issue #18's "wider model"; about
    # 2.4 times its training step on one thread)
    "wide_se_att": ([*SE_ATT, "--channels", "[32, 64, 128, 256]"], []),
    # ... the paper's depth (3 residual blocks per stage) at the CPU
    # budget's width (about 1.5 times its training step on one thread)
    "deep_se_att": ([*SE_ATT, "--blocks_per_stage", "3"], []),
    # ... with the first stage keeping the time resolution (twice the
    # frames to the pooling; about twice the computation)
    "time1_se_att": ([*SE_ATT, "--time_strides", "[1, 2, 2, 2]"], []),
    # ... with the first two stages keeping the time resolution (four
    # times the frames to the pooling; about 1.7 times time1's training
    # step on one thread)
    "time2_se_att": ([*SE_ATT, "--time_strides", "[1, 1, 2, 2]"], []),
    # ... with the frequency position as a second input channel
    "coord_se_att": ([*SE_ATT, "--freq_coord", "True"], []),
}
#: ``time2_se_att`` with batch norm on the pooled statistics
VARIANTS["time2_se_att_bn"] = (
    [*VARIANTS["time2_se_att"][0], "--pool_bn", "True"],
    [],
)
#: Speed-perturbed copies of the training speakers (90% and 110%) as
#: speakers of their own in the softmax stage: three times the classes,
#: the same batches and epochs (``time2_se_att_spk3``, ``ecapa_spk3``)
SPEAKER_SPEEDS = ["--speaker_speeds", "[90, 110]"]
VARIANTS["time2_se_att_spk3"] = (VARIANTS["time2_se_att"][0], SPEAKER_SPEEDS)
#: ... on ``time2_se_att_bn``, whose softmax stage has room for the harder
#: task (100% validation accuracy at epoch 12 with the plain speakers)
VARIANTS["time2_se_att_bn_spk3"] = (
    VARIANTS["time2_se_att_bn"][0],
    SPEAKER_SPEEDS,
)

#: Variant -> extra options of its triplet stage only.  A variant whose
#: softmax stage is another's (same options and seed, in the same
#: ``--out``) takes a copy of that trained stage instead of training it
#: again (:func:`shared_softmax`).
TRIPLET_ONLY: dict[str, list[str]] = {}
#: ``<v>_p32``: variant ``v`` with twice the speakers per triplet batch
#: (the same segments per epoch: half the batches), so more and harder
#: negatives per anchor; its softmax stage is ``v``'s.
for _v in ("time1_se_att", "time2_se_att"):
    VARIANTS[f"{_v}_p32"] = VARIANTS[_v]
    TRIPLET_ONLY[f"{_v}_p32"] = ["--speakers_per_batch", "32"]
del _v
#: ``time2_se_att_bn_m2``: twice the paper's triplet margin (0.2): after
#: the ``pool_bn`` softmax stage few semi-hard triplets of the paper's
#: margin still violate it (train loss about 0.01 per triplet)
VARIANTS["time2_se_att_bn_m2"] = VARIANTS["time2_se_att_bn"]
TRIPLET_ONLY["time2_se_att_bn_m2"] = ["--margin", "0.2"]

#: The ECAPA-TDNN peer (issue #18): its width at the CPU budget, and its
#: AAM softmax epochs (its only stage), chosen for the same CPU minutes as
#: the recipe's 12 softmax + 10 triplet epochs: on the 2-core machine one
#: ECAPA-TDNN epoch (augmented) took about 2.5 times a ResCNN softmax
#: epoch, and the recipe's two stages take about 1.8 times its softmax
#: stage (README), so 12 x 1.8 / 2.5 ~ 8 epochs.
ECAPA = "ecapa"
ECAPA_CHANNELS = (128, 128, 128, 128, 384)
ECAPA_EPOCHS = 8
#: Its options: those of the recipe's softmax stage (augmentation on, as
#: in the YAML), with the AAM loss.
ECAPA_OPTIONS = [*FEATURES, "--augment", "True", *AAM]

#: Peer variant -> its extra softmax options: ``ecapa``, and
#: ``ecapa_spk3`` with the speed-perturbed speakers of ``time2_se_att_spk3``
#: (the same data for both models).
PEERS: dict[str, list[str]] = {
    ECAPA: [],
    f"{ECAPA}_spk3": SPEAKER_SPEEDS,
}

#: Every trained variant.
TRAINED = (*VARIANTS, *PEERS)

#: Scoring methods of ``--scoring``.
SCORINGS = ("cosine", "asnorm", "crops")

#: The metrics the seed summary aggregates.
SUMMARY_METRICS = (
    "eer",
    "eer_cross",
    "eer_same",
    "min_dcf_0.01",
    "train_minutes",
)


@dataclasses.dataclass(frozen=True)
class Scoring:
    """One way of scoring the trials of a trained model.

    Attributes
    ----------
    name : str
        One of :data:`SCORINGS`.
    cohort_size, top : int
        AS-norm: cohort utterances, and the top scores per side.
    crops : int
        Crops per long file.
    crop_len : float
        Crop length in seconds.
    """

    name: str = "cosine"
    cohort_size: int = 1000
    top: int = 100
    crops: int = 3
    crop_len: float = 3.0

    @property
    def suffix(self) -> str:
        """Of the row label and the ``verify_*`` folder ('' for cosine).

        Example
        -------
        >>> Scoring("asnorm").suffix, Scoring("crops", crops=2).suffix
        ('asnorm100of1000', 'crops2x3s')
        """
        if self.name == "asnorm":
            return f"asnorm{self.top}of{self.cohort_size}"
        if self.name == "crops":
            return f"crops{self.crops}x{self.crop_len:g}s"
        return ""

    def verify_args(self) -> list[str]:
        """The ``verify.py`` options of this scoring."""
        if self.name == "asnorm":
            return [
                "--snorm",
                "--cohort_size", str(self.cohort_size),
                "--snorm_top", str(self.top),
            ]  # fmt: skip
        if self.name == "crops":
            return [
                "--crops",
                str(self.crops),
                "--crop_len",
                str(self.crop_len),
            ]
        return []


def scale_epochs(args: list[str], scale: float) -> list[str]:
    """``args`` with ``--number_of_epochs`` times ``scale`` (at least 1).

    Example
    -------
    >>> scale_epochs(["--number_of_epochs", "12", "--lr", "0.1"], 0.1)
    ['--number_of_epochs', '2', '--lr', '0.1']
    """
    out = list(args)
    for i, arg in enumerate(out[:-1]):
        if arg == "--number_of_epochs":
            out[i + 1] = str(max(1, math.ceil(int(out[i + 1]) * scale)))
    return out


def merge_options(*groups: Sequence[str]) -> list[str]:
    """``--key value`` pairs of ``groups`` in order, a later value of a key
    replacing an earlier one in its place (a YAML override may name a key
    once only).

    Example
    -------
    >>> merge_options(["--channels", "[16]", "--lr", "1"],
    ...               ["--channels", "[32]"])
    ['--channels', '[32]', '--lr', '1']
    """
    merged: dict[str, str] = {}
    for group in groups:
        if len(group) % 2:
            raise ValueError(f"options are not --key value pairs: {group}")
        for key, value in zip(group[::2], group[1::2], strict=True):
            merged[str(key)] = value
    return [item for pair in merged.items() for item in pair]


def set_epochs(args: list[str], epochs: int) -> list[str]:
    """``args`` with ``--number_of_epochs`` set to ``epochs``.

    Example
    -------
    >>> set_epochs(["--lr", "0.1", "--number_of_epochs", "12"], 20)
    ['--lr', '0.1', '--number_of_epochs', '20']
    """
    i = args.index("--number_of_epochs")
    return [*args[: i + 1], str(epochs), *args[i + 2 :]]


def ecapa_block(channels: Sequence[int] = ECAPA_CHANNELS, **extra: Any) -> str:
    """The ``embedding_model`` entry of the ECAPA-TDNN peer (YAML text).

    Example
    -------
    >>> print(ecapa_block((8, 8, 24), attention_channels=4))
    embedding_model: !new:deep_speaker_sb.lobes.ecapa.EcapaTDNN
        n_mels: !ref <n_features>
        emb_dim: !ref <emb_dim>
        channels: [8, 8, 24]
        attention_channels: 4
    <BLANKLINE>
    """
    lines = [
        "embedding_model: !new:deep_speaker_sb.lobes.ecapa.EcapaTDNN",
        "    n_mels: !ref <n_features>",
        "    emb_dim: !ref <emb_dim>",
        f"    channels: {json.dumps(list(channels))}",
    ]
    lines += [f"    {k}: {json.dumps(v)}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def swap_embedding_model(yaml_text: str, block: str) -> str:
    r"""A recipe YAML with its ``embedding_model`` entry replaced by
    ``block`` (everything else as it is).

    Raises
    ------
    ValueError
        When the YAML has not exactly one top-level ``embedding_model:
        !new:`` entry.

    Example
    -------
    >>> text = "a: 1\nembedding_model: !new:x.Y\n    k: 2\n\nb: 3\n"
    >>> print(swap_embedding_model(text, "embedding_model: !new:z.W\n"))
    a: 1
    embedding_model: !new:z.W
    <BLANKLINE>
    b: 3
    <BLANKLINE>
    """
    pattern = re.compile(
        r"^embedding_model: !new:[^\n]*\n(?:[ \t]+[^\n]*\n|[ \t]*#[^\n]*\n)*",
        re.MULTILINE,
    )
    found = pattern.findall(yaml_text)
    if len(found) != 1:
        raise ValueError(
            f"expected one 'embedding_model: !new:' entry, found {len(found)}"
        )
    return pattern.sub(lambda _: block, yaml_text)


def run_folder(out: Path, variant: str, seed: int | None) -> Path:
    """``<out>/<variant>/`` (no ``--seeds``) or ``<out>/<variant>/seed<N>/``.

    Example
    -------
    >>> run_folder(Path("o"), "augment", 2).as_posix()
    'o/augment/seed2'
    """
    folder = out / variant
    return folder if seed is None else folder / f"seed{seed}"


def _run(script: str, args: list[str], log: Path) -> float:
    """Runs a recipe script; returns its wall minutes (0 if it failed)."""
    start = time.perf_counter()
    with open(log, "a", encoding="utf-8") as f:
        proc = subprocess.run(
            [sys.executable, str(ROOT / script), *map(str, args)],
            cwd=ROOT,
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    if proc.returncode != 0:
        raise SystemExit(f"error: {script} failed, see {log}")
    return (time.perf_counter() - start) / 60


def _read_json(path: Path) -> dict:
    """The JSON object in ``path``, or ``{}`` when there is no such file."""
    return json.loads(path.read_text()) if path.is_file() else {}


def _check_options(folder: Path, name: str, args: list[str]) -> None:
    """Refuses to resume a run made with other training options."""
    path = folder / "options.json"
    saved = _read_json(path)
    wanted = [str(a) for a in args]
    if name in saved and saved[name] != wanted:
        raise SystemExit(
            f"error: {folder} holds a {name} run with other options "
            f"(see {path}); give another --out"
        )
    if name not in saved:
        write_json(path, {**saved, name: wanted})


def timed(folder: Path, name: str, script: str, args: list[str]) -> float:
    """Runs ``script`` once; its minutes are kept in ``timing.json``."""
    _check_options(folder, name, args)
    timing_file = folder / "timing.json"
    timing = _read_json(timing_file)
    if name not in timing:
        timing[name] = _run(script, args, folder / f"{name}.log")
        write_json(timing_file, timing)
    return timing[name]


def _family_eers(
    trials: list[tuple[int, str, str]],
    scores: torch.Tensor,
    utt2family: dict[str, str],
) -> dict[str, float]:
    """EER over the trials whose two utterances are of one test family."""
    out = {}
    for family in sorted(set(utt2family.values())):
        keep = [
            i
            for i, (_, a, b) in enumerate(trials)
            if utt2family.get(a) == family == utt2family.get(b)
        ]
        labels = [trials[i][0] for i in keep]
        if 0 < sum(labels) < len(labels):
            metrics = verification_metrics(labels, scores[keep])
            out[f"eer_{family}"] = round(metrics["eer"], 4)
            out[f"n_trials_{family}"] = len(keep)
    return out


def _report(
    variant: str,
    trials: list[tuple[int, str, str]],
    scores: torch.Tensor,
    minutes: float,
    utt2family: dict[str, str],
    **extra: Any,
) -> dict:
    """One JSON row: the metrics of scored trials, overall and by family."""
    metrics = verification_metrics([t[0] for t in trials], scores)
    return {
        "variant": variant,
        **extra,
        "eer": round(metrics["eer"], 4),
        "min_dcf_0.01": round(metrics["min_dcf_0.01"], 4),
        "n_trials": len(trials),
        **_family_eers(trials, scores, utt2family),
        "train_minutes": round(minutes, 1),
    }


def _label(variant: str, stage: str, scoring: Scoring) -> str:
    label = stage if variant == "base" else f"{variant}, {stage}"
    return f"{label}, {scoring.suffix}" if scoring.suffix else label


def n_parameters(module: torch.nn.Module) -> int:
    """Trainable parameters of a module (buffers not counted).

    Example
    -------
    >>> n_parameters(torch.nn.Linear(3, 2))
    8
    """
    return sum(p.numel() for p in module.parameters())


def _export_parameters(export: Path) -> int:
    from deep_speaker_sb.inference import load_without_yaml

    return n_parameters(load_without_yaml(export).mods["embedding_model"])


def _seed_args(seed: int | None) -> list[str]:
    return [] if seed is None else ["--seed", str(seed)]


def stage_options(
    variant: str, stage: str, seed: int | None = None, epochs_scale: float = 1.0
) -> list[str]:
    """The training options of one stage (``"softmax"`` or ``"triplet"``)
    of a variant: the CPU budget, then the variant's own options and the
    seed, each key once (the variant's value wins).

    Example
    -------
    >>> opts = stage_options("wide_se_att", "triplet", seed=2)
    >>> opts[opts.index("--channels") + 1], opts.count("--channels")
    ('[32, 64, 128, 256]', 1)
    >>> "--pretrain_loss" in stage_options("augment_se_att_aam", "triplet")
    False
    """
    both, softmax_only = VARIANTS[variant]
    if stage == "softmax":
        budget, extra = scale_epochs(SOFTMAX, epochs_scale), softmax_only
    elif stage == "triplet":
        budget = scale_epochs(TRIPLET, epochs_scale)
        extra = TRIPLET_ONLY.get(variant, [])
    else:
        raise ValueError(f"stage must be softmax or triplet, got {stage!r}")
    options = merge_options(
        MODEL, budget, COMMON_OPTIONS, both, _seed_args(seed), extra
    )
    return [*options, *FLAGS]


def run_variant(
    variant: str,
    prep: Path,
    folder: Path,
    utt2family: dict[str, str],
    *,
    seed: int | None = None,
    scorings: Sequence[Scoring] = (Scoring(),),
    epochs_scale: float = 1.0,
) -> list[dict]:
    """Trains and scores one variant (one seed) in ``folder``; returns its
    JSON rows."""
    folder.mkdir(parents=True, exist_ok=True)
    softmax_args = [
        "hparams/softmax.yaml",
        "--data_folder", prep,
        "--prep_folder", prep,
        "--skip_prep", "True",
        "--output_folder", folder / "softmax",
        *stage_options(variant, "softmax", seed, epochs_scale),
    ]  # fmt: skip
    shared_softmax(folder, softmax_args, seed)
    softmax_min = timed(folder, "softmax", "train_softmax.py", softmax_args)
    triplet_min = timed(
        folder,
        "triplet",
        "train_triplet.py",
        [
            "hparams/triplet.yaml",
            "--prep_folder", prep,
            "--softmax_ckpt_folder", folder / "softmax" / "save",
            "--output_folder", folder / "triplet",
            *stage_options(variant, "triplet", seed, epochs_scale),
        ],
    )  # fmt: skip
    rows = []
    exports = [("softmax", "pretrained_init", softmax_min)]
    exports.append(("softmax+triplet", "pretrained", softmax_min + triplet_min))
    for stage, export, minutes in exports:
        params = _export_parameters(folder / "triplet" / export)
        for scoring in scorings:
            name = "_".join(filter(None, ["verify", export, scoring.suffix]))
            verify_out = folder / name
            if not (verify_out / "scores.txt").is_file():
                _run(
                    "verify.py",
                    [
                        "--model", folder / "triplet" / export,
                        "--csv", prep / "test.csv",
                        "--out", verify_out,
                        *scoring.verify_args(),
                    ],
                    folder / "verify.log",
                )  # fmt: skip
            trials, scores = read_scores(verify_out / "scores.txt")
            label = _label(variant, stage, scoring)
            rows.append(
                _report(
                    label, trials, scores, minutes, utt2family,
                    seed=seed, params=params,
                )
            )  # fmt: skip
    return rows


def _without_output_folder(args: Sequence[str]) -> list[str]:
    """``args`` with the value of ``--output_folder`` blanked.

    Example
    -------
    >>> _without_output_folder(["--output_folder", "a/softmax", "--seed", "1"])
    ['--output_folder', '', '--seed', '1']
    """
    out = [str(a) for a in args]
    if "--output_folder" in out:
        out[out.index("--output_folder") + 1] = ""
    return out


def shared_softmax(folder: Path, args: Sequence[str], seed: int | None) -> bool:
    """Copies a finished softmax stage of another variant into ``folder``
    when that variant trained it with the same options (but its output
    folder) and seed in the same ``--out``; returns whether it did.

    The copy keeps the stage's training minutes (``timing.json``), so the
    variant's figures count the shared stage as if it had trained it.
    """
    if (folder / "softmax").exists():
        return False
    wanted = _without_output_folder(args)
    variants = folder.parent.parent if seed is not None else folder.parent
    pattern = f"*/{folder.name}" if seed is not None else "*"
    for other in sorted(variants.glob(pattern)):
        saved = _read_json(other / "options.json").get("softmax")
        minutes = _read_json(other / "timing.json").get("softmax")
        if minutes is None or saved is None or not (other / "softmax").is_dir():
            continue
        if _without_output_folder(saved) != wanted:
            continue
        shutil.copytree(other / "softmax", folder / "softmax")
        _check_options(folder, "softmax", list(args))
        timing_file = folder / "timing.json"
        write_json(timing_file, {**_read_json(timing_file), "softmax": minutes})
        print(f"{folder}: the softmax stage of {other}", file=sys.stderr)
        return True
    return False


def ecapa_yaml(folder: Path, block: str | None = None) -> Path:
    """Writes ``<folder>/softmax.yaml``: ``hparams/softmax.yaml`` with the
    ECAPA-TDNN (``block``, default :func:`ecapa_block`) as its model."""
    text = (ROOT / "hparams" / "softmax.yaml").read_text(encoding="utf-8")
    path = folder / "softmax.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        f.write(swap_embedding_model(text, block or ecapa_block()))
    return path


def checkpoint_model(output_folder: Path) -> Any:
    """The best checkpoint (validation accuracy) of a softmax run as a
    model ``verify.py``'s evaluation takes (a :class:`deep_speaker_sb.
    inference.PlainDeepSpeaker` of its features, normalizer and embedding
    model, on the CPU, with the default speech check).

    Arguments
    ---------
    output_folder : Path
        The run's ``--output_folder`` (``hyperparams.yaml``, ``save/``).
    """
    from hyperpyyaml import load_hyperpyyaml

    from deep_speaker_sb.checkpoints import load_best_parts
    from deep_speaker_sb.embedding import EMBEDDING_MODULES
    from deep_speaker_sb.inference import PlainDeepSpeaker

    with open(output_folder / "hyperparams.yaml", encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f)
    load_best_parts(
        hparams["save_folder"],
        hparams["modules"],
        max_key="ACC",
        missing=f"no softmax checkpoint in {hparams['save_folder']}",
    )
    mods = torch.nn.ModuleDict(
        {k: hparams["modules"][k] for k in EMBEDDING_MODULES}
    ).eval()
    # the threshold is not used here (verify.py's at_threshold only)
    return PlainDeepSpeaker(mods, int(hparams["sample_rate"]), threshold=0.5)


def score_model(
    model: Any, prep: Path, out: Path, scoring: Scoring
) -> tuple[list[tuple[int, str, str]], torch.Tensor]:
    """Scores ``prep``'s trials as ``verify.py`` does (the same
    evaluation, options and files in ``out``); returns trials and
    scores."""
    from deep_speaker_sb import evaluation
    from deep_speaker_sb.inference import Crops

    trials, utts = evaluation.load_trials(
        prep / "trials.txt", prep / "test.csv"
    )
    cohort = crops = top = None
    if scoring.name == "asnorm":
        cohort = evaluation.draw_cohort(
            prep / "train.csv", scoring.cohort_size, exclude=list(utts)
        )
        top = scoring.top
    if scoring.name == "crops":
        crops = Crops(scoring.crops, scoring.crop_len)
    result = evaluation.evaluate_trials(
        model, trials, utts, cohort=cohort, top_n=top, crops=crops
    )
    evaluation.write_evaluation(out, result)
    return result.trials, result.scores


def run_ecapa(
    prep: Path,
    folder: Path,
    utt2family: dict[str, str],
    *,
    seed: int | None = None,
    scorings: Sequence[Scoring] = (Scoring(),),
    epochs_scale: float = 1.0,
    variant: str = ECAPA,
) -> list[dict]:
    """Trains the ECAPA-TDNN peer ``variant`` of :data:`PEERS` (AAM
    softmax stage) in ``folder`` and scores its best checkpoint; returns
    its JSON rows."""
    softmax = set_epochs(SOFTMAX, ECAPA_EPOCHS)
    minutes = timed(
        folder,
        "softmax",
        "train_softmax.py",
        [
            ecapa_yaml(folder),
            "--data_folder", prep,
            "--prep_folder", prep,
            "--skip_prep", "True",
            "--output_folder", folder / "softmax",
            *ECAPA_OPTIONS, *PEERS[variant],
            *scale_epochs(softmax, epochs_scale), *COMMON, *_seed_args(seed),
        ],
    )  # fmt: skip
    model = None
    rows = []
    for scoring in scorings:
        name = "_".join(filter(None, ["verify", "softmax", scoring.suffix]))
        out = folder / name
        if model is None:
            model = checkpoint_model(folder / "softmax")
        if (out / "scores.txt").is_file():
            trials, scores = read_scores(out / "scores.txt")
        else:
            trials, scores = score_model(model, prep, out, scoring)
        rows.append(
            _report(
                _label(variant, "AAM softmax", scoring),
                trials, scores, minutes, utt2family,
                seed=seed, params=n_parameters(model.mods["embedding_model"]),
            )
        )  # fmt: skip
        exported = (folder / "pretrained" / "config.json").is_file()
        if scoring.name == "cosine" and not exported:
            # the threshold from plain cosine scores, as verify.py scores
            export_peer(model, folder / "pretrained", trials, scores, prep)
    return rows


def export_peer(
    model: Any,
    out: Path,
    trials: Sequence[tuple[int, str, str]],
    scores: torch.Tensor,
    prep: Path,
) -> Path:
    """Exports the trained ECAPA-TDNN peer like the recipe's models (a
    pretrained folder ``bench/inference_throughput.py --export`` and
    ``verify.py --model`` take), its threshold the EER threshold of its
    test scores (a benchmark export, not calibrated)."""
    from deep_speaker_sb.export import export_pretrained

    labels = [label for label, _, _ in trials]
    threshold = verification_metrics(labels, scores)["eer_threshold"]
    mods = model.mods
    return export_pretrained(
        out,
        compute_features=mods["compute_features"],
        mean_var_norm=mods["mean_var_norm"],
        embedding_model=mods["embedding_model"],
        threshold=float(threshold),
        card={
            "data": f"{prep} (benchmark corpus)",
            "epochs": ECAPA_EPOCHS,
            "training": "bench/accuracy.py ECAPA-TDNN peer, AAM softmax",
        },
        onnx=False,
    )


def mfcc_row(prep: Path, utt2family: dict[str, str]) -> dict:
    """The mean-MFCC + cosine baseline on the same test trials (the mean
    vector of the test utterances subtracted first)."""
    trials = read_trials(prep / "trials.txt")
    utts = utterances(read_manifest(prep / "test.csv"))
    ids = sorted({u for _, a, b in trials for u in (a, b)})
    vectors = mean_mfcc_vectors([Path(utts[u].wav) for u in ids])
    vectors = torch.from_numpy(vectors - vectors.mean(0))
    scores = score_trials(trials, dict(zip(ids, vectors, strict=True)))
    return _report("mfcc", trials, scores, 0.0, utt2family, params=0)


def _utt2family(voices: Path | None, prep: Path) -> dict[str, str]:
    if voices is None:
        return {}
    table = json.loads(voices.read_text())
    spk2family = {
        spk: info["test"]
        for spk, info in table.items()
        if info.get("test") in ("same", "cross")
    }
    utts = utterances(read_manifest(prep / "test.csv"))
    return {
        u.utt_id: spk2family[u.spk_id]
        for u in utts.values()
        if u.spk_id in spk2family
    }


# --------------------------------------------------------------------------
# The summary over seeds
# --------------------------------------------------------------------------


def spread(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation (0 for one value), min and max.

    Example
    -------
    >>> spread([0.10, 0.12, 0.14])
    {'mean': 0.12, 'std': 0.02, 'min': 0.1, 'max': 0.14}
    """
    values = [float(v) for v in values]
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {
        "mean": round(statistics.fmean(values), 6),
        "std": round(std, 6),
        "min": min(values),
        "max": max(values),
    }


def summarize_seeds(rows: Sequence[dict]) -> list[dict]:
    """One entry per model (``variant`` label) over its seeds' rows.

    Arguments
    ---------
    rows : sequence of dict
        The JSON rows of every (variant, seed) run (``variant``, ``seed``,
        the :data:`SUMMARY_METRICS`, ``params``).

    Returns
    -------
    list of dict
        In the order the models first appear: ``variant``, ``seeds``
        (sorted; None for a row without a seed), ``n_seeds``, ``params``,
        and per metric present in every row of the model its
        :func:`spread` (``mean``, ``std``: sample standard deviation,
        ``min``, ``max``).

    Example
    -------
    >>> rows = [{"variant": "a", "seed": s, "eer": e, "params": 7}
    ...         for s, e in ((1, 0.1), (2, 0.3))]
    >>> summarize_seeds(rows + [{"variant": "mfcc", "eer": 0.4}])
    ... # doctest: +NORMALIZE_WHITESPACE
    [{'variant': 'a', 'seeds': [1, 2], 'n_seeds': 2, 'params': 7,
      'eer': {'mean': 0.2, 'std': 0.141421, 'min': 0.1, 'max': 0.3}},
     {'variant': 'mfcc', 'seeds': [None], 'n_seeds': 1, 'params': None,
      'eer': {'mean': 0.4, 'std': 0.0, 'min': 0.4, 'max': 0.4}}]
    """
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["variant"], []).append(row)
    out = []
    for variant, group in groups.items():
        seeds = sorted(
            (r.get("seed") for r in group), key=lambda s: (s is None, s)
        )
        entry: dict[str, Any] = {
            "variant": variant,
            "seeds": seeds,
            "n_seeds": len(group),
            "params": group[0].get("params"),
        }
        for metric in SUMMARY_METRICS:
            if all(metric in r for r in group):
                entry[metric] = spread([r[metric] for r in group])
        out.append(entry)
    return out


def _cell(stats: dict | None, percent: bool, digits: int = 2) -> str:
    if stats is None:
        return "–"
    k = 100 if percent else 1
    unit = "%" if percent else ""
    mean, std = k * stats["mean"], k * stats["std"]
    lo, hi = k * stats["min"], k * stats["max"]
    text = f"{mean:.{digits}f}{unit}"
    if lo != hi:
        text += f" ± {std:.{digits}f} ({lo:.{digits}f}–{hi:.{digits}f})"
    return text


def summary_markdown(summary: Sequence[dict]) -> str:
    """The seed summary as a markdown table: mean ± sample standard
    deviation (min–max) over the seeds.

    Example
    -------
    >>> rows = [{"variant": "a", "seed": s, "eer": e, "params": 7}
    ...         for s, e in ((1, 0.1), (2, 0.3))]
    >>> print(summary_markdown(summarize_seeds(rows)).splitlines()[-1])
    | a | 2 | 20.00% ± 14.14 (10.00–30.00) | – | – | – | 7 | – |
    """
    lines = [
        "| model | seeds | EER all | EER cross-family | EER same-family "
        "| minDCF(0.01) | parameters | training minutes |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for e in summary:
        params = "–" if e.get("params") is None else f"{e['params']:,}"
        cells = [
            e["variant"],
            str(e["n_seeds"]),
            _cell(e.get("eer"), True),
            _cell(e.get("eer_cross"), True),
            _cell(e.get("eer_same"), True),
            _cell(e.get("min_dcf_0.01"), False, 3),
            params,
            _cell(e.get("train_minutes"), False, 1),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(out: Path, rows: Sequence[dict]) -> list[dict]:
    """Writes ``<out>/summary.json`` and ``<out>/summary.md``."""
    summary = summarize_seeds(rows)
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        out / "summary.json",
        {
            "spread": "mean, sample standard deviation (std), min, max "
            "over the seeds",
            "models": summary,
        },
    )
    with atomic_write(out / "summary.md") as f:
        f.write(
            "Mean ± sample standard deviation (min–max) over the seeds.\n\n"
        )
        f.write(summary_markdown(summary))
    return summary


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"expected distinct seeds: {text!r}")
    return values


def add_prep_folder(p: argparse.ArgumentParser) -> None:
    """The required ``--prep_folder`` (``--prep``: its deprecated name)."""
    add_renamed_option(
        p,
        "--prep_folder",
        "--prep",
        type=Path,
        required=True,
        help="prepared data (data_prep.py)",
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    add_prep_folder(p)
    p.add_argument("--voices", type=Path, help="voices.json of the corpus")
    p.add_argument("--out", type=Path, required=True, help="runs go here")
    p.add_argument(
        "--variants",
        default=",".join(["mfcc", *TRAINED]),
        help="comma-separated: mfcc and/or " + ", ".join(TRAINED),
    )
    p.add_argument(
        "--seeds",
        type=_int_list,
        default=None,
        help="comma-separated seeds, e.g. 1,2,3: each variant once per "
        "seed (<out>/<variant>/seed<N>/), then <out>/summary.{json,md}",
    )
    p.add_argument(
        "--scoring",
        default="cosine",
        help="comma-separated: " + ", ".join(SCORINGS) + " (default cosine)",
    )
    p.add_argument("--cohort_size", type=int, default=1000, help="asnorm")
    p.add_argument(
        "--asnorm_top", type=int, default=100, help="asnorm: top K per side"
    )
    p.add_argument("--crops", type=int, default=3, help="crops per file")
    p.add_argument(
        "--crop_len", type=float, default=3.0, help="crop length (s)"
    )
    p.add_argument(
        "--epochs_scale",
        type=float,
        default=1.0,
        help="multiply every stage's epochs (at least 1; for smoke runs)",
    )
    args = p.parse_args(argv)
    args.variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in args.variants if v not in ("mfcc", *TRAINED)]
    if unknown:
        p.error(f"unknown variant {unknown[0]!r}")
    names = [s for s in args.scoring.split(",") if s]
    if not names or any(s not in SCORINGS for s in names):
        p.error(f"--scoring takes {', '.join(SCORINGS)}")
    if args.seeds and "augment_seed2" in args.variants:
        p.error(
            "augment_seed2 is augment with --seed 2: with --seeds, use "
            "--variants augment"
        )
    if not args.epochs_scale > 0:
        p.error("--epochs_scale must be positive")
    args.scorings = [
        Scoring(
            name,
            cohort_size=args.cohort_size,
            top=args.asnorm_top,
            crops=args.crops,
            crop_len=args.crop_len,
        )
        for name in names
    ]
    return args


def main(argv: list[str] | None = None) -> None:
    """Prints one JSON line per scored model (and the seed summary)."""
    args = parse_args(argv)
    utt2family = _utt2family(args.voices, args.prep_folder)
    rows = []
    for variant in args.variants:
        if variant == "mfcc":
            rows.append(mfcc_row(args.prep_folder, utt2family))
            print(json.dumps(rows[-1]), flush=True)
            continue
        for seed in args.seeds or [None]:
            folder = run_folder(args.out, variant, seed)
            options = {
                "seed": seed,
                "scorings": args.scorings,
                "epochs_scale": args.epochs_scale,
            }
            if variant in PEERS:
                new = run_ecapa(
                    args.prep_folder, folder, utt2family, **options,
                    variant=variant,
                )  # fmt: skip
            else:
                new = run_variant(
                    variant, args.prep_folder, folder, utt2family, **options
                )
            for row in new:
                rows.append(row)
                print(json.dumps(row), flush=True)
    if args.seeds:
        summary = write_summary(args.out, rows)
        print(summary_markdown(summary), end="")
        print(f"wrote {args.out / 'summary.json'}, {args.out / 'summary.md'}")


if __name__ == "__main__":
    main()
