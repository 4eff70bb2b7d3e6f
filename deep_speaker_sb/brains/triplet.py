"""The triplet stage of Deep Speaker: fine-tuning on cosine triplets.

:class:`TripletBrain` starts from the softmax stage's best embedding model
(:func:`init_from_softmax`) and trains it with the triplet loss of
:mod:`deep_speaker_sb.losses` on batches of ``P`` speakers x ``K`` segments
(:class:`deep_speaker_sb.data.sampler.SpeakerBatchSampler`).  Every epoch
it embeds the whole cached WAV of each ``valid.csv`` utterance, scores
validation trials (:func:`deep_speaker_sb.data.trials.make_trials`) by
cosine similarity and logs the EER; the checkpoint with the lowest
validation EER is kept, and :func:`export_best` exports it (and
:func:`export_initial` the model before triplet training, for comparison)
with :func:`deep_speaker_sb.export.export_pretrained`, writing the model
card from the stage's hyperparameters.

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import speechbrain as sb
import torch
from speechbrain.dataio.dataloader import make_dataloader
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.utils.checkpoints import Checkpoint
from speechbrain.utils.logger import get_logger
from torch import Tensor

from deep_speaker_sb.brains.base import EmbeddingBrain
from deep_speaker_sb.calibration import ScoreCalibration
from deep_speaker_sb.checkpoints import input_config, load_best_parts
from deep_speaker_sb.data.sampler import SpeakerBatchSampler
from deep_speaker_sb.data.shards import (
    SpeakerShardBatches,
    make_shard_loader,
    triplet_shard_batches,
    use_shards,
)
from deep_speaker_sb.data.trials import make_trials
from deep_speaker_sb.dataio import (
    audio_pipeline,
    read_manifest,
    segment_dataset,
    utterance_dataset,
    utterances,
)
from deep_speaker_sb.errors import DataError, MissingFileError
from deep_speaker_sb.evaluation import fit_calibration
from deep_speaker_sb.export import export_pretrained, write_score_calibration
from deep_speaker_sb.inference import DeepSpeaker
from deep_speaker_sb.losses import collapse_warning
from deep_speaker_sb.onnx_export import calibration_audio, onnx_installed
from deep_speaker_sb.scoring import calibrate, compute_eer, score_trials
from deep_speaker_sb.utils import Pathlike, write_json

logger = get_logger(__name__)


class TripletBrain(EmbeddingBrain):
    """Trains ResCNN embeddings with the cosine triplet loss.

    Expects, besides what :class:`~deep_speaker_sb.brains.base.
    EmbeddingBrain` needs, the hparams ``compute_cost``
    (:class:`deep_speaker_sb.losses.TripletLoss`), ``init_from``,
    ``num_valid_trials`` and ``seed``.

    A training batch gives the loss and the mean SAP / SAN of its mined
    triplets.  Validation embeds whole utterances (batches with ``id``,
    ``sig``, ``spk_id``), builds trials over them with
    :func:`~deep_speaker_sb.data.trials.make_trials` and logs the EER (a
    fraction, as everywhere in the project) and its threshold; a
    checkpoint is kept by lowest EER.  The
    ``TEST`` stage (``evaluate``) does the same without checkpointing: the
    recipe runs it on the validation set before the first epoch, which
    logs the EER of the initial (softmax) model as epoch 0.
    """

    def compute_objectives(
        self, predictions: Tensor, batch: Any, stage: sb.Stage
    ) -> Tensor:
        """Triplet loss in training; collects the embeddings otherwise.

        Validation is scored by the EER at the end of the stage; its
        per-batch loss is zero.
        """
        if stage == sb.Stage.TRAIN:
            _, inverse = np.unique(batch.spk_id, return_inverse=True)
            labels = torch.as_tensor(inverse, device=predictions.device)
            # P x K rows (x 2 when augmented: the originals, then copies)
            labels = self.augmented_labels(labels, predictions, stage)
            stats = self.hparams.compute_cost(predictions.float(), labels)
            if not torch.isnan(stats.sap):
                self.sap_sum += stats.sap.item()
                self.san_sum += stats.san.item()
                self.n_stats += 1
            return stats.loss
        for utt, spk, emb in zip(
            batch.id, batch.spk_id, predictions.detach(), strict=True
        ):
            self.embeddings[utt] = emb.float().cpu()
            self.utt2spk[utt] = spk
        return predictions.new_zeros(())

    def on_stage_start(self, stage: sb.Stage, epoch: int | None = None):
        """Resets the SAP/SAN averages or the collected embeddings."""
        if stage == sb.Stage.TRAIN:
            self.sap_sum = self.san_sum = 0.0
            self.n_stats = 0
        else:
            self.embeddings: dict[str, Tensor] = {}
            self.utt2spk: dict[str, str] = {}

    def on_stage_end(
        self, stage: sb.Stage, stage_loss: float, epoch: int | None = None
    ):
        """Logs loss/SAP/SAN and the validation EER; checkpoints."""
        if stage == sb.Stage.TRAIN:
            n = max(self.n_stats, 1)
            self.train_stats = {
                "loss": stage_loss,
                "SAP": round(self.sap_sum / n, 4),
                "SAN": round(self.san_sum / n, 4),
            }
            warning = collapse_warning(
                self.sap_sum / n,
                self.san_sum / n,
                stage_loss,
                self.hparams.compute_cost.margin,
            )
            if warning and self.n_stats:
                logger.warning("epoch %s: %s", epoch, warning)
            return
        eer, threshold = self._validation_eer()
        stats = {"EER": round(eer, 6), "threshold": round(threshold, 6)}
        self.valid_stats = stats
        calibration = self._validation_calibration()
        if stage == sb.Stage.TEST:
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": 0, "init": self.hparams.init_from},
                valid_stats=stats,
            )
            if calibration:  # for export_initial
                self.valid_stats = {**stats, "score_calibration": calibration}
            return
        meta = {
            "EER": stats["EER"],
            "threshold": threshold,
            "epoch": epoch,
            "input": input_config(self.modules),
        }
        if calibration:  # export_best writes it into the export
            meta["score_calibration"] = calibration
        self.end_validation_epoch(epoch, stats, meta=meta, min_keys=["EER"])

    def _validation_eer(self) -> tuple[float, float]:
        """EER (fraction) and threshold over the collected embeddings."""
        # The same utterances give the same trials: draw them once.
        key = tuple(sorted(self.utt2spk.items()))
        cached = getattr(self, "_valid_trials", None)
        if cached is None or cached[0] != key:
            trials = make_trials(
                self.utt2spk, self.hparams.num_valid_trials, self.hparams.seed
            )
            self._valid_trials = (key, trials)
        trials = self._valid_trials[1]
        if not trials:
            raise DataError(_no_trials_message(len(self.utt2spk)))
        scores = score_trials(trials, self.embeddings)
        self._valid_scores = ([t[0] for t in trials], scores)
        target = torch.tensor([t[0] == 1 for t in trials])
        return compute_eer(scores[target], scores[~target])

    def _validation_calibration(self) -> dict[str, Any] | None:
        """The score calibration and operating points of the validation
        trials just scored (``config.json``'s entries), or None (with a
        warning) when the scores cannot be calibrated."""
        labels, scores = self._valid_scores
        try:
            fitted = calibrate(labels, scores, "validation trials")
        except DataError as exc:
            logger.warning("no score calibration this epoch: %s", exc)
            return None
        return fitted.to_config()


def _no_trials_message(n_utts: int) -> str:
    return (
        f"valid.csv ({n_utts} utterances) has no speaker with two "
        "utterances, so no validation trial can be made; prepare the data "
        "with a larger valid_ratio"
    )


def dataio_prep(
    hparams: Mapping[str, Any],
) -> tuple[
    DynamicItemDataset | SpeakerShardBatches,
    DynamicItemDataset,
    SpeakerBatchSampler | SpeakerShardBatches,
]:
    """Builds the training segments, validation utterances and sampler.

    Arguments
    ---------
    hparams : mapping
        Uses ``prep_folder``, ``train_annotation``, ``valid_annotation``,
        ``sentence_len``, ``sample_rate``, ``speakers_per_batch``,
        ``n_per_speaker``, ``batches_per_epoch``, ``small_speakers``,
        ``num_valid_trials`` and ``seed``.

    Returns
    -------
    train_data : DynamicItemDataset
        The segments of ``train.csv``: ``id``, ``sig``, ``spk_id``.
    valid_data : DynamicItemDataset
        The whole utterances of ``valid.csv``: ``id``, ``sig``, ``spk_id``.
    sampler : SpeakerBatchSampler
        P x K batches over ``train_data`` (rank-aware under DDP).

    With ``data_format: shards``, ``train_data`` and ``sampler`` are both
    the :class:`~deep_speaker_sb.data.shards.SpeakerShardBatches` of
    ``train_shards`` (P x K batches from a speaker buffer); validation
    still embeds the whole utterances of ``valid.csv``.

    Raises
    ------
    UserError
        If a manifest is missing or broken, or no validation trial can be
        made.
    """
    data_root = hparams["prep_folder"]
    valid_rows = read_manifest(hparams["valid_annotation"], data_root)
    utts = utterances(valid_rows)
    utt2spk = {u.utt_id: u.spk_id for u in utts.values()}
    if not make_trials(utt2spk, hparams["num_valid_trials"], hparams["seed"]):
        raise DataError(_no_trials_message(len(utts)))
    valid_data = utterance_dataset(utts, hparams["valid_annotation"])
    if use_shards(hparams):
        batches = triplet_shard_batches(hparams)
        return batches, valid_data, batches
    train_rows = read_manifest(hparams["train_annotation"], data_root)

    train_data = segment_dataset(train_rows)
    train_data.add_dynamic_item(
        audio_pipeline(
            hparams["sentence_len"],
            hparams["sample_rate"],
            random_crop=True,
            manifest=hparams["train_annotation"],
        )
    )
    train_data.set_output_keys(["id", "sig", "spk_id"])

    sampler = SpeakerBatchSampler(
        [row.spk_id for row in train_rows],
        speakers_per_batch=hparams["speakers_per_batch"],
        n_per_speaker=hparams["n_per_speaker"],
        num_batches=hparams["batches_per_epoch"],
        seed=hparams["seed"],
        small_speakers=hparams["small_speakers"],
    )
    return train_data, valid_data, sampler


def make_train_loader(
    train_data: DynamicItemDataset | SpeakerShardBatches,
    sampler: SpeakerBatchSampler | SpeakerShardBatches,
    **loader_kwargs: Any,
) -> torch.utils.data.DataLoader:
    """The training DataLoader over P x K batches.

    Built here rather than by ``Brain.fit``: under DDP, SpeechBrain would
    wrap a ``batch_sampler`` in a ``DistributedSamplerWrapper``, while
    :class:`SpeakerBatchSampler` already gives each rank its own batches.
    Set ``brain.train_sampler = sampler`` so that ``fit`` calls
    ``sampler.set_epoch(epoch)`` every epoch.

    Arguments
    ---------
    train_data : DynamicItemDataset
        The training segments.
    sampler : SpeakerBatchSampler
        The batch sampler.
    **loader_kwargs : dict
        More DataLoader options (``num_workers``, ...; no ``batch_size``).

    Returns
    -------
    torch.utils.data.DataLoader
        Batches padded by SpeechBrain's ``PaddedBatch``.
    """
    if isinstance(sampler, SpeakerShardBatches):
        return make_shard_loader(sampler, **loader_kwargs)
    return make_dataloader(train_data, batch_sampler=sampler, **loader_kwargs)


def init_from_softmax(
    softmax_ckpt_folder: Pathlike, modules: Mapping[str, torch.nn.Module]
) -> Checkpoint:
    """Loads the embedding model and normalizer from the softmax stage.

    Takes the checkpoint with the best validation accuracy (``ACC``).

    Arguments
    ---------
    softmax_ckpt_folder : Pathlike
        The softmax stage's checkpoint folder (``.../save``).
    modules : mapping
        Holds ``embedding_model`` and ``mean_var_norm``.

    Returns
    -------
    Checkpoint
        The checkpoint loaded (``path``, ``meta``).

    Raises
    ------
    MissingFileError
        If there is no softmax checkpoint.
    ConfigError
        If it does not fit the model of the YAML.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain.processing.features import InputNormalization
    >>> from speechbrain.utils.checkpoints import Checkpointer
    >>> from deep_speaker_sb.lobes.rescnn import ResCNN
    >>> folder = tempfile.mkdtemp()
    >>> saver = Checkpointer(folder, {
    ...     "embedding_model": ResCNN(channels=(4,), emb_dim=8),
    ...     "normalizer": InputNormalization("sentence")})
    >>> for acc in (0.9, 0.5):
    ...     _ = saver.save_checkpoint(meta={"ACC": acc})
    >>> fresh = {"embedding_model": ResCNN(channels=(4,), emb_dim=8),
    ...          "mean_var_norm": InputNormalization("sentence")}
    >>> init_from_softmax(folder, fresh).meta["ACC"]
    0.9
    """
    ckpt = load_best_parts(
        softmax_ckpt_folder,
        modules,
        max_key="ACC",
        missing=f"no softmax checkpoint in {softmax_ckpt_folder}: run "
        "train_softmax.py first (same seed), or set softmax_ckpt_folder, "
        "or init_from: scratch",
    )
    logger.info(
        "initialized the embedding model from %s (validation ACC %s)",
        ckpt.path,
        ckpt.meta.get("ACC"),
    )
    return ckpt


# --------------------------------------------------------------------------
# The triplet stage's exports
# --------------------------------------------------------------------------

#: In a triplet output folder: the validation stats of the initial model.
INITIAL_STATS_FILE = "initial_valid_stats.json"


def save_initial_stats(output_folder: Pathlike, stats: dict[str, Any]) -> None:
    """Saves the validation stats of the initial model (epoch 0), which
    :func:`export_best` puts in the model card and the recipe prints.

    Example
    -------
    >>> import tempfile
    >>> d = tempfile.mkdtemp()
    >>> load_initial_stats(d) is None
    True
    >>> save_initial_stats(d, {"EER": 0.25, "threshold": 0.5})
    >>> load_initial_stats(d)
    {'EER': 0.25, 'threshold': 0.5}
    """
    write_json(Path(output_folder) / INITIAL_STATS_FILE, dict(stats))


def load_initial_stats(output_folder: Pathlike) -> dict[str, Any] | None:
    """The stats saved by :func:`save_initial_stats`, or None."""
    path = Path(output_folder) / INITIAL_STATS_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _export_stage(
    hparams: dict[str, Any],
    folder: Pathlike,
    threshold: float,
    card: dict[str, Any],
    score_calibration: dict[str, Any] | None = None,
) -> Path:
    """Exports the modules of ``hparams`` as they are now, with the card
    entries every export of the triplet stage shares (and the score
    calibration of the validation trials, ``config.json``'s entries as
    :meth:`ScoreCalibration.to_config` wrote them, when given)."""
    card = {
        "data": str(hparams["prep_folder"]),
        "init_from": hparams["init_from"],
        **card,
        "seed": hparams["seed"],
    }
    if hparams["init_from"] == "softmax":
        card["softmax checkpoints"] = str(hparams["softmax_ckpt_folder"])
    if hparams["init_from"] == "pretrained":
        card["initial model"] = str(hparams["init_pretrained"])
    calibration = None
    train_csv = Path(str(hparams.get("train_annotation", "")))
    if not train_csv.is_file():
        logger.warning("no training manifest %s: no int8 ONNX copy", train_csv)
    elif onnx_installed():  # the int8 copy is calibrated on training audio
        calibration = calibration_audio(train_csv)
    folder = export_pretrained(
        folder,
        compute_features=hparams["compute_features"],
        mean_var_norm=hparams["mean_var_norm"],
        embedding_model=hparams["embedding_model"],
        threshold=float(threshold),
        card=card,
        calibration=calibration,
        score_calibration=(
            ScoreCalibration.from_config(score_calibration)
            if score_calibration
            else None
        ),
    )
    calibrate_on_held_out(hparams, folder)
    return folder


def calibrate_on_held_out(
    hparams: dict[str, Any], folder: Pathlike
) -> ScoreCalibration | None:
    """Fits an export's score calibration on the held-out speakers.

    ``data_prep.py`` holds a few training speakers out of training
    (``cal_speakers``: ``cal.csv`` and its trials ``cal_trials.txt``); the
    export is scored on their trials as a user would score it, and the
    calibration and operating points fitted there replace those of the
    validation trials in its ``config.json`` (speakers the model trained
    on: their EER is far lower than on new speakers, so LLRs fitted there
    are overconfident).  Without held-out speakers nothing changes.

    Arguments
    ---------
    hparams : dict
        Uses ``cal_annotation`` and ``cal_trials`` (absent: nothing done).
    folder : Pathlike
        The export folder.

    Returns
    -------
    ScoreCalibration or None
        What was fitted and written, or None.
    """
    trials = Path(str(hparams.get("cal_trials", "")))
    csv_path = Path(str(hparams.get("cal_annotation", "")))
    if not (trials.is_file() and csv_path.is_file()):
        logger.warning(
            "no held-out speakers (%s): the score calibration is fitted on "
            "validation trials of training speakers, which overstates "
            "confidence on new speakers; prepare with data_prep.py "
            "--cal_speakers N",
            trials,
        )
        return None
    if trials.stat().st_size == 0:  # too few training speakers
        return None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = DeepSpeaker.from_config(folder, run_opts={"device": device})
    try:  # a broken cal.csv costs the calibration, never the export
        n_speakers = len({r.spk_id for r in read_manifest(csv_path)})
        _, fitted = fit_calibration(
            model,
            trials,
            csv_path,
            fitted_on=f"trials of {n_speakers} held-out speakers",
        )
    except (DataError, MissingFileError) as exc:
        logger.warning("no calibration on the held-out speakers: %s", exc)
        return None
    write_score_calibration(folder, fitted)
    logger.info(
        "score calibration of %s fitted on %d held-out speakers: %s",
        folder,
        n_speakers,
        fitted.calibration.formula(),
    )
    return fitted


def export_initial(hparams: dict[str, Any], stats: dict[str, Any]) -> Path:
    """Exports the model before triplet training (the softmax embeddings)
    to ``init_pretrained_folder``, so that it can be scored with
    ``verify.py`` beside the triplet model.

    Arguments
    ---------
    hparams : dict
        The triplet stage's hyperparameters, modules freshly initialized.
    stats : dict
        The epoch-0 validation stats (``EER`` as a fraction,
        ``threshold``, and ``score_calibration`` when it could be fitted).

    Returns
    -------
    Path
        The export folder.
    """
    card = {
        "epochs": "0 triplet (the initial model)",
        "valid_eer": float(stats["EER"]),
    }
    folder = _export_stage(
        hparams,
        hparams["init_pretrained_folder"],
        stats["threshold"],
        card,
        stats.get("score_calibration"),
    )
    logger.info("exported the initial model to %s", folder)
    return folder


def export_best(hparams: dict[str, Any]) -> Path:
    """Exports the triplet stage's best-EER checkpoint to
    ``pretrained_folder``.

    Loads the best checkpoint's model parts into ``hparams``' modules,
    then calls :func:`export_pretrained` with its validation EER threshold,
    the score calibration fitted on the same validation trials (its
    ``score_calibration`` metadata, absent from older checkpoints) and a
    model card (which also gives the EER of the initial model when
    :func:`save_initial_stats` saved it).

    Arguments
    ---------
    hparams : dict
        The triplet stage's hyperparameters.

    Returns
    -------
    Path
        The export folder.

    Raises
    ------
    MissingFileError
        If no checkpoint with a validation EER exists.
    """
    best = load_best_parts(
        hparams["save_folder"],
        hparams["modules"],
        min_key="EER",
        missing=f"no triplet checkpoint with a validation EER in "
        f"{hparams['save_folder']}: train first (python train_triplet.py "
        "hparams/triplet.yaml)",
    )
    card = {
        "epochs": f"{hparams['number_of_epochs']} triplet "
        f"(best: epoch {best.meta.get('epoch')})",
        "valid_eer": float(best.meta["EER"]),
        "mining": hparams["mining"],
        "margin": hparams["margin"],
        "batch": f"{hparams['speakers_per_batch']} speakers x "
        f"{hparams['n_per_speaker']} segments",
        "lr": f"{hparams['lr']} -> {hparams['lr_final']}",
    }
    initial = load_initial_stats(hparams["output_folder"])
    if initial is not None:
        card["validation EER before triplet training"] = (
            f"{100 * float(initial['EER']):.2f}%"
        )
    folder = _export_stage(
        hparams,
        hparams["pretrained_folder"],
        best.meta["threshold"],
        card,
        best.meta.get("score_calibration"),
    )
    logger.info(
        "exported epoch %s (validation EER %.2f%%) to %s",
        best.meta.get("epoch"),
        100 * best.meta["EER"],
        folder,
    )
    return folder
