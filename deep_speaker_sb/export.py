"""Writes the self-contained pretrained folder of a trained Deep Speaker.

The folder (``<output_folder>/pretrained/``, see ``docs/DESIGN.md``) holds

- ``hyperparams.yaml``: the inference hyperparameters (features, sentence
  mean/variance normalization, the embedding model - the ResCNN or its
  peer, the ECAPA-TDNN - an audio normalizer to the model's
  sample rate, ``modules`` and a ``pretrainer`` whose paths point into the
  folder);
- ``embedding_model.ckpt`` and ``mean_var_norm.ckpt``: the weights and the
  normalizer's statistics;
- ``threshold.json``: the decision threshold on cosine similarity (the
  EER threshold of the validation trials; the decision threshold of an
  export without operating points);
- ``config.json``: the model as plain data (``model_class`` names the
  embedding model's class, ``model`` its arguments) and, when the scores were
  calibrated (:mod:`deep_speaker_sb.calibration`), ``calibration`` (cosine
  -> LLR) and ``operating_points`` (the thresholds of the EER and of target
  false-accept rates, the EER one deciding by default);
- ``model_card.md``: data, epochs, validation EER, threshold, model size and
  features;
- ``embedding_model.onnx`` and ``embedding_model.int8.onnx`` (when
  onnxruntime is installed; see :mod:`deep_speaker_sb.onnx_export`): the
  whole audio -> embedding graph for ``backend="onnx"`` / ``"onnx-int8"``
  and :mod:`deep_speaker_sb.runtime`, recorded in ``config.json``
  (``onnx``: files, opset, exporting versions) and the model card.

It is built in a temporary sibling folder and renamed into place, so an
interrupted export never leaves a half-written folder behind.  Load it with
``DeepSpeaker.from_hparams(source=folder)``.

The triplet stage exports through
:func:`deep_speaker_sb.brains.triplet.export_best` (the checkpoint with the
lowest validation EER) and :func:`~deep_speaker_sb.brains.triplet.
export_initial` (the model before triplet training, for comparison).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from speechbrain.processing.features import InputNormalization
from speechbrain.utils.logger import get_logger

from deep_speaker_sb.calibration import (
    STORED_THRESHOLD,
    OperatingPoint,
    ScoreCalibration,
)
from deep_speaker_sb.checkpoints import unwrap
from deep_speaker_sb.defaults import PRETRAINED_DIR, TRIPLET_RESULTS
from deep_speaker_sb.errors import DataError, MissingFileError
from deep_speaker_sb.features import Features
from deep_speaker_sb.lobes import (
    DEFAULT_MODEL_CLASS,
    model_class,
    model_class_name,
)
from deep_speaker_sb.onnx_export import (
    ONNX_FILE,
    ONNX_INT8_FILE,
    onnx_installed,
    write_onnx,
)
from deep_speaker_sb.runtime import (
    CONFIG_FILE,
    THRESHOLD_FILE,
    read_json_object,
)
from deep_speaker_sb.sb_compat import norm_statistics
from deep_speaker_sb.speech import SpeechCheck
from deep_speaker_sb.utils import Pathlike, atomic_write, write_json

logger = get_logger(__name__)

HPARAMS_FILE = "hyperparams.yaml"
EMBEDDING_CKPT = "embedding_model.ckpt"
NORM_CKPT = "mean_var_norm.ckpt"
CARD_FILE = "model_card.md"
# CONFIG_FILE (the model as plain data, no code runs when it is read: see
# :func:`deep_speaker_sb.inference.load_without_yaml`) and THRESHOLD_FILE
# are the torch-free runtime's, which reads them too
CONFIG_FORMAT = 1

#: Every file an export folder must hold.
REQUIRED_FILES = (
    HPARAMS_FILE,
    EMBEDDING_CKPT,
    NORM_CKPT,
    THRESHOLD_FILE,
    CARD_FILE,
)

#: How to make an export, for error messages.
HOW_TO_EXPORT = (
    "train and export a model with `python train_triplet.py "
    f"hparams/triplet.yaml` (it writes {TRIPLET_RESULTS}/<seed>/"
    f"{PRETRAINED_DIR})"
)


def _yaml_value(value: Any) -> str:
    """One YAML flow value (JSON is valid YAML for these types)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "null"
    if isinstance(value, tuple):
        value = list(value)
    return json.dumps(value)


def _params(config: dict[str, Any]) -> list[str]:
    """Indented ``key: value`` lines of constructor arguments."""
    return [f"    {key}: {_yaml_value(value)}" for key, value in config.items()]


def norm_config(mean_var_norm: InputNormalization) -> dict[str, Any]:
    """Constructor arguments of an ``InputNormalization`` instance.

    Example
    -------
    >>> norm_config(InputNormalization(norm_type="sentence", std_norm=False))
    ... # doctest: +NORMALIZE_WHITESPACE
    {'norm_type': 'sentence', 'std_norm': False, 'length_dim': 1,
     'update_until_epoch': 2, 'avoid_padding_norm': False, 'epsilon': 1e-10}
    """
    until = mean_var_norm.update_until_epoch
    return {
        "norm_type": mean_var_norm.norm_type,
        "std_norm": bool(mean_var_norm.std_norm),
        "length_dim": int(mean_var_norm.length_dim),
        "update_until_epoch": None if math.isinf(until) else int(until),
        "avoid_padding_norm": bool(mean_var_norm.avoid_padding_norm),
        "epsilon": float(mean_var_norm.epsilon),
    }


def hparams_text(
    folder: Pathlike,
    features_config: dict[str, Any],
    norm_cfg: dict[str, Any],
    model_config: dict[str, Any],
    model_name: str = DEFAULT_MODEL_CLASS,
) -> str:
    """The inference ``hyperparams.yaml`` of an export folder.

    Arguments
    ---------
    folder : Pathlike
        The final export folder (``pretrained_path`` in the file;
        :meth:`DeepSpeaker.from_hparams` overrides it with the folder it
        loads from, so the folder can be moved).
    features_config, norm_cfg, model_config : dict
        Constructor arguments of ``Features``, ``InputNormalization`` and
        the embedding model.
    model_name : str
        The embedding model's class
        (:data:`deep_speaker_sb.lobes.EMBEDDING_MODELS`).

    Returns
    -------
    str
        HyperPyYAML text.

    Example
    -------
    >>> from hyperpyyaml import load_hyperpyyaml
    >>> from deep_speaker_sb.lobes.rescnn import ResCNN
    >>> text = hparams_text("/tmp/x", Features().config,
    ...                     {"norm_type": "sentence"},
    ...                     ResCNN(channels=(4,), emb_dim=8).config)
    >>> hp = load_hyperpyyaml(text)
    >>> hp["sample_rate"], type(hp["embedding_model"]).__name__
    (8000, 'ResCNN')
    >>> hp["pretrainer"].paths["embedding_model"]
    '/tmp/x/embedding_model.ckpt'
    """
    feats = dict(features_config)
    sample_rate = int(feats.pop("sample_rate"))
    lines = [
        f"# Deep Speaker ({model_name}) speaker embeddings: inference "
        "hyperparameters",
        "# written by deep_speaker_sb.export.  Load this folder with",
        "#   from deep_speaker_sb.inference import DeepSpeaker",
        "#   model = DeepSpeaker.from_hparams(source=<this folder>)",
        "# It decides at config.json's EER operating point when config.json",
        "# has one (refitted by verify.py --calibrate; --far picks a FAR",
        "# point), else at threshold.json's threshold.",
        "",
        "# Folder holding the checkpoints (overridden by",
        "# DeepSpeaker.from_hparams with the folder it loads from).",
        f"pretrained_path: {_yaml_value(str(Path(folder).absolute()))}",
        f"sample_rate: {sample_rate}",
        f"threshold_file: !ref <pretrained_path>/{THRESHOLD_FILE}",
        "",
        "# Any input rate / channel count -> mono at the model's rate",
        "audio_normalizer: !new:speechbrain.dataio.preprocess.AudioNormalizer",
        "    sample_rate: !ref <sample_rate>",
        "    mix: avg-to-mono",
        "",
        "compute_features: !new:deep_speaker_sb.features.Features",
        "    sample_rate: !ref <sample_rate>",
    ]
    lines += _params(feats)
    lines += [
        "",
        "mean_var_norm: !new:speechbrain.processing.features."
        "InputNormalization",
    ]
    lines += _params(norm_cfg)
    model_cls = model_class(model_name)
    lines += [
        "",
        f"embedding_model: !new:{model_cls.__module__}.{model_cls.__name__}",
    ]
    lines += _params(model_config)
    lines += [
        "",
        "modules:",
        "    compute_features: !ref <compute_features>",
        "    mean_var_norm: !ref <mean_var_norm>",
        "    embedding_model: !ref <embedding_model>",
        "",
        "pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer",
        "    loadables:",
        "        embedding_model: !ref <embedding_model>",
        "        mean_var_norm: !ref <mean_var_norm>",
        "    paths:",
        f"        embedding_model: !ref <pretrained_path>/{EMBEDDING_CKPT}",
        f"        mean_var_norm: !ref <pretrained_path>/{NORM_CKPT}",
        "",
    ]
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


#: The model card's row of the decision threshold.
DECISION_ROW = "decision threshold"


def decision_card_line(point: OperatingPoint) -> str:
    """The model card's row of the threshold that decides by default
    (:meth:`ScoreCalibration.select` with no FAR).

    Example
    -------
    >>> decision_card_line(OperatingPoint("threshold.json", 0.61))
    '0.6100 (threshold.json; accept if cosine > it)'
    >>> decision_card_line(OperatingPoint("eer", 0.58))
    '0.5800 (the eer operating point of config.json; accept if cosine > it)'
    """
    where = (
        STORED_THRESHOLD
        if point.name == STORED_THRESHOLD
        else f"the {point.name} operating point of {CONFIG_FILE}"
    )
    return f"{point.threshold:.4f} ({where}; accept if cosine > it)"


def card_text(
    card: dict[str, Any],
    decision: OperatingPoint,
    n_params: int,
    features_config: dict[str, Any],
    model_config: dict[str, Any],
    norm_cfg: dict[str, Any],
    model_name: str = DEFAULT_MODEL_CLASS,
) -> str:
    """The ``model_card.md`` of an export.

    ``card`` keys shown first when present: ``data``, ``epochs``,
    ``valid_eer`` (fraction), ``seed``; any other key follows as is.
    ``decision`` is the operating point that decides by default (see
    :func:`decision_card_line`).
    The normalization row names ``norm_cfg``'s ``norm_type`` (the
    argument of ``InputNormalization``) ``feature_norm``, the YAML's;
    ``model_name`` is the embedding model's class (its row's name).

    Example
    -------
    >>> text = card_text({"data": "VIVOS", "epochs": 3, "valid_eer": 0.05},
    ...                  OperatingPoint("threshold.json", 0.61), 1000,
    ...                  Features().config, {"channels": [4]},
    ...                  {"norm_type": "sentence"})
    >>> "| validation EER | 5.00% |" in text
    True
    >>> "| decision threshold | 0.6100 (threshold.json; " in text
    True
    >>> "| normalization | feature_norm=sentence |" in text
    True
    """
    rows = []
    card = dict(card)
    if "data" in card:
        rows.append(("training data", _fmt(card.pop("data"))))
    if "epochs" in card:
        rows.append(("epochs", _fmt(card.pop("epochs"))))
    if "valid_eer" in card:
        eer = card.pop("valid_eer")
        text = f"{100 * eer:.2f}%" if isinstance(eer, (int, float)) else eer
        rows.append(("validation EER", str(text)))
    rows.append((DECISION_ROW, decision_card_line(decision)))
    rows.append(
        (
            "model size",
            f"{n_params:,} parameters ({4 * n_params / 2**20:.1f} MiB float32)",
        )
    )
    rows.append(("features", _fmt(features_config)))
    shown = {
        ("feature_norm" if k == "norm_type" else k): v
        for k, v in norm_cfg.items()
    }
    rows.append(("normalization", _fmt(shown)))
    rows.append((model_name, _fmt(model_config)))
    rows += [(str(k), _fmt(v)) for k, v in card.items()]
    stamp = datetime.datetime.now(datetime.timezone.utc)
    about = (
        [
            "Speaker embeddings trained with softmax pre-training and triplet",
            "loss on cosine similarity (Li et al. 2017, *Deep Speaker*).",
        ]
        if model_name == DEFAULT_MODEL_CLASS
        else [
            f"Speaker embeddings of the {model_name} "
            f"({model_class(model_name).__module__}).",
        ]
    )
    lines = [
        f"# Deep Speaker ({model_name}) speaker embeddings",
        "",
        *about,
        "",
        "| | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "from deep_speaker_sb.inference import DeepSpeaker",
        'model = DeepSpeaker.from_hparams(source="<this folder>")',
        'emb = model.encode_file("speech.wav")  # any rate, any channels',
        'score, same = model.verify_files("a.wav", "b.wav")',
        "```",
        "",
        f"Exported {stamp:%Y-%m-%d %H:%M} UTC by deep_speaker_sb.export.",
        "",
    ]
    return "\n".join(lines)


def _save_state(module: torch.nn.Module, path: Path) -> None:
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    with atomic_write(path, "wb") as f:
        torch.save(state, f)


def _save_norm(norm: InputNormalization, path: Path) -> None:
    stats = {
        k: v.detach().cpu() if torch.is_tensor(v) else v
        for k, v in norm_statistics(norm).items()
    }
    with atomic_write(path, "wb") as f:
        torch.save(stats, f)


def export_pretrained(
    folder: Pathlike,
    *,
    compute_features: Features,
    mean_var_norm: InputNormalization,
    embedding_model: torch.nn.Module,
    threshold: float,
    card: dict[str, Any],
    onnx: bool = True,
    calibration: Sequence[torch.Tensor] | None = None,
    score_calibration: ScoreCalibration | None = None,
) -> Path:
    """Writes the self-contained pretrained folder (replacing any old one).

    Arguments
    ---------
    folder : Pathlike
        The export folder, e.g. ``results/triplet/<seed>/pretrained``.
    compute_features : Features
        The feature front end (its ``config`` is written).
    mean_var_norm : InputNormalization
        The feature normalizer (its arguments and statistics are written).
    embedding_model : torch.nn.Module
        The trained model, a ResCNN or an
        :class:`~deep_speaker_sb.lobes.ecapa.EcapaTDNN` (its class name,
        ``config`` and weights are written; a DataParallel / DDP wrapper
        is looked through).
    threshold : float
        The threshold of ``threshold.json`` on cosine similarity (accept
        when above), e.g. the validation EER threshold; it decides unless
        ``score_calibration`` has an EER operating point.
    card : dict
        Model card facts: ``data``, ``epochs``, ``valid_eer`` and any
        other ``key: value`` to show.
    onnx : bool
        Also write ``embedding_model.onnx`` (skipped, with a warning, when
        onnxruntime is not installed).
    calibration : sequence of torch.Tensor, optional
        Training waveforms ``[time]`` that calibrate the int8 copy
        ``embedding_model.int8.onnx`` (None: no int8 copy).
    score_calibration : ScoreCalibration, optional
        The cosine -> LLR calibration and the operating points fitted on
        the validation trials (:func:`deep_speaker_sb.scoring.calibrate`),
        written into ``config.json`` (None: the export decides at
        ``threshold`` and gives no LLR).

    Returns
    -------
    Path
        The export folder.

    Example
    -------
    >>> import tempfile, pathlib
    >>> from deep_speaker_sb.lobes.rescnn import ResCNN
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "pretrained"
    >>> folder = export_pretrained(
    ...     out,
    ...     compute_features=Features(),
    ...     mean_var_norm=InputNormalization(norm_type="sentence"),
    ...     embedding_model=ResCNN(channels=(4, 8), emb_dim=16,
    ...                            blocks_per_stage=1),
    ...     threshold=0.5,
    ...     card={"data": "demo", "epochs": 1, "valid_eer": 0.1},
    ...     onnx=False,
    ... )
    >>> sorted(p.name for p in folder.iterdir())
    ... # doctest: +NORMALIZE_WHITESPACE
    ['config.json', 'embedding_model.ckpt', 'hyperparams.yaml',
     'mean_var_norm.ckpt', 'model_card.md', 'threshold.json']
    >>> read_threshold(folder)
    0.5
    """
    threshold = float(threshold)
    if not math.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold}")
    folder = Path(folder).absolute()
    model = unwrap(embedding_model)
    norm = unwrap(mean_var_norm)
    feats = unwrap(compute_features)
    features_config = dict(feats.config)
    model_name = model_class_name(model)
    model_config = dict(model.config)
    norm_cfg = norm_config(norm)
    n_params = sum(p.numel() for p in model.parameters())

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(
        tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent)
    )
    old = None
    try:
        with atomic_write(tmp / HPARAMS_FILE) as f:
            f.write(
                hparams_text(
                    folder, features_config, norm_cfg, model_config, model_name
                )
            )
        _save_state(model, tmp / EMBEDDING_CKPT)
        _save_norm(norm, tmp / NORM_CKPT)
        config = _config(features_config, norm_cfg, model_config, model_name)
        if onnx and onnx_installed():
            config["onnx"] = write_onnx(tmp, feats, norm, model, calibration)
            card = {**card, "ONNX": onnx_card_line(config["onnx"])}
        if score_calibration is not None:
            config.update(score_calibration.to_config())
            line = calibration_card_line(score_calibration)
            card = {**card, CALIBRATION_ROW: line} if line else card
        write_json(tmp / CONFIG_FILE, config)
        write_json(
            tmp / THRESHOLD_FILE,
            {
                "threshold": threshold,
                "score": "cosine similarity",
                "accept": "score > threshold",
            },
        )
        with atomic_write(tmp / CARD_FILE) as f:
            f.write(
                card_text(
                    card,
                    (score_calibration or ScoreCalibration()).select(
                        None, threshold
                    ),
                    n_params,
                    features_config,
                    model_config,
                    norm_cfg,
                    model_name,
                )
            )
        os.chmod(tmp, 0o755)
        if folder.exists():
            old = Path(
                tempfile.mkdtemp(
                    prefix=f".{folder.name}.old-", dir=folder.parent
                )
            )
            os.replace(folder, old / folder.name)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not folder.exists():
            with contextlib.suppress(OSError):
                os.replace(old / folder.name, folder)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    logger.info("exported the pretrained model to %s", folder)
    return folder


def _config(
    features_config: dict[str, Any],
    norm_cfg: dict[str, Any],
    model_config: dict[str, Any],
    model_name: str,
) -> dict[str, Any]:
    """The ``config.json`` of an export (without its ``onnx`` entry)."""
    return {
        "format": CONFIG_FORMAT,
        "features": features_config,
        "normalization": norm_cfg,
        "model_class": model_name,
        "model": model_config,
        "speech_check": dataclasses.asdict(SpeechCheck()),
    }


def onnx_card_line(entry: dict[str, Any]) -> str:
    """The model card's ONNX row from ``config.json``'s ``onnx`` entry.

    Example
    -------
    >>> onnx_card_line({"fp32": "m.onnx", "int8": "m.int8.onnx",
    ...                 "opset": 17, "torch": "2.9.1", "onnx": "1.2"})
    'm.onnx, m.int8.onnx (opset 17; exported with torch 2.9.1, onnx 1.2)'
    """
    files = ", ".join(entry[k] for k in ("fp32", "int8") if entry.get(k))
    tools = ", ".join(
        f"{k} {entry[k]}"
        for k in ("torch", "onnx", "onnxruntime")
        if entry.get(k)
    )
    return f"{files} (opset {entry['opset']}; exported with {tools})"


#: The model card's row of the score calibration.
CALIBRATION_ROW = "score calibration"


def calibration_card_line(sc: ScoreCalibration) -> str:
    """The model card's row of a calibration (empty without one).

    Example
    -------
    >>> from deep_speaker_sb.calibration import Calibration, OperatingPoint
    >>> sc = ScoreCalibration(
    ...     Calibration(12.5, -5.0, fitted_on="validation trials",
    ...                 trials=4000, cllr=0.31, min_cllr=0.29),
    ...     {"far_0.01": OperatingPoint("far_0.01", 0.71, 0.01)})
    >>> calibration_card_line(sc)  # doctest: +NORMALIZE_WHITESPACE
    'LLR = 12.5 * cosine - 5 (Cllr 0.31, min-Cllr 0.29 on 4000
     validation trials); FAR 1%: threshold 0.7100'
    """
    cal = sc.calibration
    if cal is None:
        return ""
    text = cal.formula()
    if cal.cllr is not None and cal.min_cllr is not None:
        text += (
            f" (Cllr {cal.cllr:.3g}, min-Cllr {cal.min_cllr:.3g} on "
            f"{cal.trials} {cal.fitted_on})"
        )
    fars = [
        f"FAR {100 * p.target_far:g}%: threshold {p.threshold:.4f}"
        for p in sc.points.values()
        if p.target_far and p.reliable
    ]
    return "; ".join([text, *fars])


def _set_card_row(folder: Path, key: str, value: str) -> None:
    """Sets the model card's ``| key | value |`` row (in its place; added
    at the end of the table when missing)."""
    card_path = folder / CARD_FILE
    text = card_path.read_text(encoding="utf-8")
    row = f"| {key} | {value} |"
    lines = text.splitlines()
    at = [i for i, ln in enumerate(lines) if ln.startswith(f"| {key} |")]
    if at:
        lines[at[0]] = row
        lines = [ln for i, ln in enumerate(lines) if i not in at[1:]]
    else:
        end = max(i for i, ln in enumerate(lines) if ln.startswith("|"))
        lines.insert(end + 1, row)
    with atomic_write(card_path) as f:
        f.write("\n".join(lines) + "\n")


def write_score_calibration(folder: Pathlike, sc: ScoreCalibration) -> Path:
    """Writes a calibration and its operating points into an export's
    ``config.json`` (atomically: a temporary file renamed over it),
    replacing any earlier ones; updates the model card's row.

    Arguments
    ---------
    folder : Pathlike
        An export folder with ``config.json``.
    sc : ScoreCalibration
        What :func:`deep_speaker_sb.scoring.calibrate` fitted.

    Returns
    -------
    Path
        The ``config.json`` written.

    Raises
    ------
    MissingFileError
        For an export older than ``config.json`` (re-export it).
    """
    folder = check_export_folder(folder)
    config = read_config(folder)
    if config is None:
        raise MissingFileError(
            f"{folder / CONFIG_FILE} missing: the export predates "
            "config.json; export it again (train_triplet.py ... "
            "--export_only True), then calibrate"
        )
    config = {
        k: v
        for k, v in config.items()
        if k not in ("calibration", "operating_points")
    }
    config.update(sc.to_config())
    path = folder / CONFIG_FILE
    write_json(path, config)
    if (folder / CARD_FILE).is_file():
        line = calibration_card_line(sc)
        if line:
            _set_card_row(folder, CALIBRATION_ROW, line)
        decision = sc.select(None, read_threshold(folder))
        _set_card_row(folder, DECISION_ROW, decision_card_line(decision))
    return path


def record_onnx(
    folder: Pathlike,
    entry: dict[str, Any],
    parts: Sequence[torch.nn.Module],
) -> None:
    """Records ONNX files added to an existing export folder: the ``onnx``
    entry of ``config.json`` (written from ``parts``, the features,
    normalizer and embedding model, when the folder predates it) and a
    row of the
    model card."""
    folder = Path(folder)
    feats, norm, model = (unwrap(p) for p in parts)
    config = read_config(folder) or _config(
        dict(feats.config),
        norm_config(norm),
        dict(model.config),
        model_class_name(model),
    )
    write_json(folder / CONFIG_FILE, {**config, "onnx": entry})
    _set_card_row(folder, "ONNX", onnx_card_line(entry))


def onnx_file(folder: Pathlike, int8: bool = False) -> Path:
    """The ONNX file of an export folder (fp32, or the int8 copy).

    Raises
    ------
    MissingFileError
        For an export without it, saying how to add it.
    """
    folder = Path(folder)
    path = folder / (ONNX_INT8_FILE if int8 else ONNX_FILE)
    if not path.is_file():
        calib = " --calibration_csv data/vivos8k/train.csv" if int8 else ""
        raise MissingFileError(
            f"{path} missing: the export predates ONNX or was made without "
            f"onnxruntime; add it with `python export_onnx.py {folder}"
            f"{calib}` (or re-export: train_triplet.py ... --export_only "
            "True)"
        )
    return path


def missing_files(folder: Pathlike) -> list[str]:
    """The required export files absent from ``folder``.

    Example
    -------
    >>> import tempfile
    >>> missing_files(tempfile.mkdtemp())[:2]
    ['hyperparams.yaml', 'embedding_model.ckpt']
    """
    folder = Path(folder)
    return [n for n in REQUIRED_FILES if not (folder / n).is_file()]


def check_export_folder(folder: Pathlike) -> Path:
    """Checks that ``folder`` is a complete export; returns it.

    Raises
    ------
    MissingFileError
        Naming the missing folder or file and how to make it.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(
            f"model folder not found: {folder}; {HOW_TO_EXPORT}, or give "
            "an existing export folder"
        )
    missing = missing_files(folder)
    if missing:
        raise MissingFileError(
            f"model folder {folder} is incomplete: {', '.join(missing)} "
            f"missing; {HOW_TO_EXPORT}"
        )
    return folder


def read_config(folder: Pathlike) -> dict[str, Any] | None:
    """An export's ``config.json`` as a dict; None for an export older
    than it.

    Raises
    ------
    DataError
        When it is not a JSON object.
    """
    path = Path(folder) / CONFIG_FILE
    if not path.is_file():
        return None
    return read_json_object(path, HOW_TO_EXPORT)


def read_score_calibration(folder: Pathlike) -> ScoreCalibration:
    """The calibration and operating points of an export's
    ``config.json`` (none for an export without them).

    Raises
    ------
    DataError
        When they are malformed.
    """
    try:
        return ScoreCalibration.from_config(read_config(folder))
    except DataError as exc:
        raise DataError(f"{Path(folder) / CONFIG_FILE}: {exc}") from None


def read_threshold(folder: Pathlike) -> float:
    """The decision threshold stored in ``<folder>/threshold.json``."""
    path = Path(folder) / THRESHOLD_FILE
    try:
        value = float(json.loads(path.read_text(encoding="utf-8"))["threshold"])
    except FileNotFoundError:
        raise MissingFileError(f"{path} missing; {HOW_TO_EXPORT}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is not a valid threshold file: {exc}") from exc
    if not (math.isfinite(value) and -1.0 <= value <= 1.0):
        raise DataError(
            f"{path}: the threshold must be a cosine in [-1, 1], got {value}"
        )
    return value


def latest_export(results: Pathlike = TRIPLET_RESULTS) -> Path:
    """The most recently written ``<results>/*/pretrained`` folder.

    Arguments
    ---------
    results : Pathlike
        The triplet stage's results root.

    Raises
    ------
    MissingFileError
        When no export exists there.

    Example
    -------
    >>> import tempfile, pathlib, os
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> for seed, t in (("1", 100), ("2", 200)):
    ...     (root / seed / PRETRAINED_DIR).mkdir(parents=True)
    ...     _ = (root / seed / PRETRAINED_DIR / HPARAMS_FILE).write_text("")
    ...     os.utime(root / seed / PRETRAINED_DIR / HPARAMS_FILE, (t, t))
    >>> latest_export(root).parent.name
    '2'
    """
    results = Path(results)
    found = [
        p.parent
        for p in results.glob(f"*/{PRETRAINED_DIR}/{HPARAMS_FILE}")
        if p.is_file()
    ]
    if not found:
        raise MissingFileError(
            f"no trained model in {results}/*/{PRETRAINED_DIR}; "
            f"{HOW_TO_EXPORT}, "
            "or give --model DIR"
        )
    return max(found, key=lambda p: (p / HPARAMS_FILE).stat().st_mtime)
