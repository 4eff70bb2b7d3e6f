"""The triplet stage of Deep Speaker: fine-tuning on cosine triplets.

:class:`TripletBrain` starts from the softmax stage's best embedding model
(:func:`init_from_softmax`) and trains it with the triplet loss of
:mod:`deep_speaker_sb.losses` on batches of ``P`` speakers x ``K`` segments
(:class:`deep_speaker_sb.data.sampler.SpeakerBatchSampler`).  Every epoch
it embeds the whole cached WAV of each ``valid.csv`` utterance, scores
validation trials (:func:`deep_speaker_sb.data.trials.make_trials`) by
cosine similarity and logs the EER; the checkpoint with the lowest
validation EER is kept, and :func:`export_best` exports it.

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import speechbrain as sb
import torch
from speechbrain.dataio.dataio import read_audio
from speechbrain.dataio.dataloader import make_dataloader
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.utils.checkpoints import Checkpoint, Checkpointer
from speechbrain.utils.data_pipeline import provides, takes
from speechbrain.utils.logger import get_logger
from torch import Tensor

from deep_speaker_sb.brains.softmax import (
    anneal_and_log,
    audio_pipeline,
    check_manifest,
    compute_embeddings,
    manifest_dataset,
    plain_batchnorm_on_cpu,
)
from deep_speaker_sb.data.sampler import SpeakerBatchSampler
from deep_speaker_sb.data.trials import make_trials
from deep_speaker_sb.data.vivos import resolve_wav
from deep_speaker_sb.errors import UserError
from deep_speaker_sb.scoring import compute_eer, score_trials
from deep_speaker_sb.utils import Pathlike, write_json

logger = get_logger(__name__)

#: Checkpoint name (the same in both stages' checkpointers) -> ``modules``
#: key, for the parts the triplet stage takes from the softmax stage.
MODEL_PARTS = {
    "embedding_model": "embedding_model",
    "normalizer": "mean_var_norm",
}

#: In the output folder: the validation stats of the initial model.
INITIAL_STATS_FILE = "initial_valid_stats.json"


class TripletBrain(sb.Brain):
    """Trains ResCNN embeddings with the cosine triplet loss.

    Expects the modules ``compute_features``, ``mean_var_norm`` and
    ``embedding_model`` and the hparams ``compute_cost``
    (:class:`deep_speaker_sb.losses.TripletLoss`), ``lr_annealing``,
    ``train_logger``, ``init_from``, ``num_valid_trials`` and ``seed``.

    A training batch gives the loss and the mean SAP / SAN of its mined
    triplets.  Validation embeds whole utterances (batches with ``id``,
    ``sig``, ``spk_id``), builds trials over them with
    :func:`~deep_speaker_sb.data.trials.make_trials` and logs the EER (in
    %) and its threshold; a checkpoint is kept by lowest EER.  The
    ``TEST`` stage (``evaluate``) does the same without checkpointing: the
    recipe runs it on the validation set before the first epoch, which
    logs the EER of the initial (softmax) model as epoch 0.
    """

    def compute_forward(self, batch: Any, stage: sb.Stage) -> Tensor:
        """Embeds a batch of waveforms: ``[batch, emb_dim]``."""
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        return compute_embeddings(self.modules, wavs, lens)

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
            return
        eer, threshold = self._validation_eer()
        stats = {"EER": round(100 * eer, 4), "threshold": round(threshold, 6)}
        self.valid_stats = stats
        if stage == sb.Stage.TEST:
            self.hparams.train_logger.log_stats(
                stats_meta={"epoch": 0, "init": self.hparams.init_from},
                valid_stats=stats,
            )
            return
        anneal_and_log(self, epoch, stats)
        self.checkpointer.save_and_keep_only(
            meta={"EER": stats["EER"], "threshold": threshold, "epoch": epoch},
            min_keys=["EER"],
        )

    def on_fit_start(self):
        """SpeechBrain's setup, with plain batch norm for DDP on CPU
        (as the softmax stage; see ``plain_batchnorm_on_cpu``)."""
        with plain_batchnorm_on_cpu(self):
            super().on_fit_start()

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
            raise UserError(_no_trials_message(len(self.utt2spk)))
        scores = score_trials(trials, self.embeddings)
        target = torch.tensor([t[0] == 1 for t in trials])
        return compute_eer(scores[target], scores[~target])


def _no_trials_message(n_utts: int) -> str:
    return (
        f"valid.csv ({n_utts} utterances) has no speaker with two "
        "utterances, so no validation trial can be made; prepare the data "
        "with a larger valid_ratio"
    )


def valid_utterances(
    rows: Sequence[Mapping[str, str]], data_root: Pathlike
) -> dict[str, dict[str, str]]:
    """One entry per utterance of manifest rows (its whole cached WAV).

    Arguments
    ---------
    rows : sequence of dict
        Segment rows with ``wav`` and ``spk_id`` (from ``check_manifest``).
    data_root : Pathlike
        Substituted for ``{data_root}`` in the ``wav`` column.

    Returns
    -------
    dict
        Utterance id (the WAV's stem) -> ``{"wav", "spk_id"}``, sorted.

    Example
    -------
    >>> rows = [
    ...     {"wav": "{data_root}/S/U1.wav", "spk_id": "S"},
    ...     {"wav": "{data_root}/S/U1.wav", "spk_id": "S"},
    ...     {"wav": "{data_root}/S/U0.wav", "spk_id": "S"},
    ... ]
    >>> valid_utterances(rows, "/d")
    {'U0': {'wav': '/d/S/U0.wav', 'spk_id': 'S'}, \
'U1': {'wav': '/d/S/U1.wav', 'spk_id': 'S'}}
    """
    utts: dict[str, dict[str, str]] = {}
    for row in rows:
        wav = resolve_wav(row["wav"], data_root)
        utts.setdefault(Path(wav).stem, {"wav": wav, "spk_id": row["spk_id"]})
    return dict(sorted(utts.items()))


@takes("wav")
@provides("sig")
def utterance_pipeline(wav: str) -> Tensor:
    """Reads a whole cached WAV (an utterance's embedding input)."""
    return read_audio(wav)


def dataio_prep(
    hparams: Mapping[str, Any],
) -> tuple[DynamicItemDataset, DynamicItemDataset, SpeakerBatchSampler]:
    """Builds the training segments, validation utterances and sampler.

    Arguments
    ---------
    hparams : mapping
        Uses ``prep_folder``, ``train_annotation``, ``valid_annotation``,
        ``sentence_len``, ``sample_rate``, ``n_speakers``,
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

    Raises
    ------
    UserError
        If a manifest is missing or broken, or no validation trial can be
        made.
    """
    data_root = hparams["prep_folder"]
    train_rows = check_manifest(hparams["train_annotation"], data_root)
    valid_rows = check_manifest(hparams["valid_annotation"], data_root)

    train_data = manifest_dataset(train_rows, data_root)
    train_data.add_dynamic_item(
        audio_pipeline(
            hparams["sentence_len"], hparams["sample_rate"], random_crop=True
        )
    )
    train_data.set_output_keys(["id", "sig", "spk_id"])

    utts = valid_utterances(valid_rows, data_root)
    utt2spk = {u: d["spk_id"] for u, d in utts.items()}
    if not make_trials(utt2spk, hparams["num_valid_trials"], hparams["seed"]):
        raise UserError(_no_trials_message(len(utts)))
    valid_data = DynamicItemDataset(
        utts,
        dynamic_items=[utterance_pipeline],
        output_keys=["id", "sig", "spk_id"],
    )

    labels = [train_data.data[i]["spk_id"] for i in train_data.data_ids]
    sampler = SpeakerBatchSampler(
        labels,
        n_speakers=hparams["n_speakers"],
        n_per_speaker=hparams["n_per_speaker"],
        num_batches=hparams["batches_per_epoch"],
        seed=hparams["seed"],
        small_speakers=hparams["small_speakers"],
    )
    return train_data, valid_data, sampler


def make_train_loader(
    train_data: DynamicItemDataset,
    sampler: SpeakerBatchSampler,
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
    return make_dataloader(train_data, batch_sampler=sampler, **loader_kwargs)


def _part_checkpointer(
    folder: Pathlike, modules: Mapping[str, torch.nn.Module]
) -> Checkpointer:
    """A checkpointer over just the model parts (``MODEL_PARTS``); it
    loads them with their own hooks and ignores the rest of a checkpoint
    (classifier, optimizer, counter)."""
    return Checkpointer(
        folder,
        recoverables={name: modules[key] for name, key in MODEL_PARTS.items()},
    )


def _load_parts(checkpointer: Checkpointer, ckpt: Checkpoint) -> None:
    missing = [name for name in MODEL_PARTS if name not in ckpt.paramfiles]
    if missing:
        raise UserError(f"checkpoint {ckpt.path} has no {', '.join(missing)}")
    try:
        checkpointer.load_checkpoint(ckpt)
    except RuntimeError as exc:
        raise UserError(
            f"checkpoint {ckpt.path} does not fit the model of this YAML "
            "(the model sections of softmax.yaml and triplet.yaml must be "
            f"the same): {str(exc).splitlines()[0]}"
        ) from exc


def _load_best_parts(
    folder: Path,
    modules: Mapping[str, torch.nn.Module],
    key: Mapping[str, str],
    missing: str,
) -> Checkpoint:
    """Loads the model parts of the best checkpoint in ``folder``.

    ``key`` is ``{"max_key": ...}`` or ``{"min_key": ...}`` for
    ``Checkpointer.find_checkpoint``; ``missing`` is the error message
    when there is no such checkpoint.
    """
    ckpt = None
    if folder.is_dir():
        checkpointer = _part_checkpointer(folder, modules)
        ckpt = checkpointer.find_checkpoint(**key)
    if ckpt is None:
        raise UserError(missing)
    _load_parts(checkpointer, ckpt)
    return ckpt


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
    UserError
        If there is no softmax checkpoint, or it does not fit the model.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain.processing.features import InputNormalization
    >>> from deep_speaker_sb.lobes.rescnn import ResCNN
    >>> modules = {"embedding_model": ResCNN(channels=(4,), emb_dim=8),
    ...            "mean_var_norm": InputNormalization("sentence")}
    >>> init_from_softmax(tempfile.mkdtemp(), modules)
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.UserError: no softmax checkpoint in ...
    """
    folder = Path(softmax_ckpt_folder)
    ckpt = _load_best_parts(
        folder,
        modules,
        {"max_key": "ACC"},
        f"no softmax checkpoint in {folder}: run train_softmax.py first "
        "(same seed), or set softmax_ckpt_folder, or init_from: scratch",
    )
    logger.info(
        "initialized the embedding model from %s (validation ACC %s)",
        ckpt.path,
        ckpt.meta.get("ACC"),
    )
    return ckpt


def load_best(
    save_folder: Pathlike, modules: Mapping[str, torch.nn.Module]
) -> Checkpoint:
    """Loads the triplet checkpoint with the lowest validation EER.

    Arguments
    ---------
    save_folder : Pathlike
        The triplet stage's checkpoint folder.
    modules : mapping
        Holds ``embedding_model`` and ``mean_var_norm``.

    Returns
    -------
    Checkpoint
        Its ``meta`` holds ``EER`` (%), ``threshold`` and ``epoch``.

    Raises
    ------
    UserError
        If no checkpoint with a validation EER exists.
    """
    folder = Path(save_folder)
    return _load_best_parts(
        folder,
        modules,
        {"min_key": "EER"},
        f"no triplet checkpoint with a validation EER in {folder}: "
        "train first (python train_triplet.py hparams/triplet.yaml)",
    )


def save_initial_stats(
    output_folder: Pathlike, stats: Mapping[str, Any]
) -> None:
    """Saves the validation stats of the initial model (epoch 0), which
    :func:`export_best` puts in the model card and the recipe prints."""
    write_json(Path(output_folder) / INITIAL_STATS_FILE, dict(stats))


def load_initial_stats(output_folder: Pathlike) -> dict[str, Any] | None:
    """The stats saved by :func:`save_initial_stats`, or None."""
    path = Path(output_folder) / INITIAL_STATS_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _export(
    hparams: Mapping[str, Any],
    folder: Pathlike,
    threshold: float,
    card: dict[str, Any],
) -> Path:
    """Exports the modules of ``hparams`` as they are now (see
    :func:`deep_speaker_sb.export.export_pretrained`), with the card
    entries every export of this stage shares."""
    from deep_speaker_sb.export import export_pretrained

    card = {
        "data": str(hparams["prep_folder"]),
        "init_from": hparams["init_from"],
        **card,
        "seed": hparams["seed"],
    }
    if hparams["init_from"] == "softmax":
        card["softmax checkpoints"] = str(hparams["softmax_ckpt_folder"])
    return Path(
        export_pretrained(
            folder,
            compute_features=hparams["compute_features"],
            mean_var_norm=hparams["mean_var_norm"],
            embedding_model=hparams["embedding_model"],
            threshold=float(threshold),
            card=card,
        )
    )


def export_initial(
    hparams: Mapping[str, Any], stats: Mapping[str, Any]
) -> Path:
    """Exports the model before triplet training (the softmax embeddings)
    to ``init_pretrained_folder``, so that it can be scored with
    ``verify.py`` beside the triplet model.

    Arguments
    ---------
    hparams : mapping
        The triplet stage's hyperparameters, modules freshly initialized.
    stats : mapping
        The epoch-0 validation stats (``EER`` in %, ``threshold``).

    Returns
    -------
    Path
        The export folder.
    """
    card = {
        "epochs": "0 triplet (the initial model)",
        "valid_eer": float(stats["EER"]) / 100,
    }
    folder = _export(
        hparams, hparams["init_pretrained_folder"], stats["threshold"], card
    )
    logger.info("exported the initial model to %s", folder)
    return folder


def export_best(hparams: Mapping[str, Any]) -> Path:
    """Exports the best-EER checkpoint to ``pretrained_folder``.

    Loads the best checkpoint's weights into ``hparams``' modules, then
    calls :func:`deep_speaker_sb.export.export_pretrained` with its
    validation EER threshold and a model card (which also gives the EER
    of the initial model when :func:`save_initial_stats` saved it).

    Arguments
    ---------
    hparams : mapping
        The triplet stage's hyperparameters.

    Returns
    -------
    Path
        The export folder.
    """
    best = load_best(hparams["save_folder"], hparams["modules"])
    card = {
        "epochs": f"{hparams['number_of_epochs']} triplet "
        f"(best: epoch {best.meta.get('epoch')})",
        "valid_eer": float(best.meta["EER"]) / 100,
        "mining": hparams["mining"],
        "margin": hparams["margin"],
        "batch": f"{hparams['n_speakers']} speakers x "
        f"{hparams['n_per_speaker']} segments",
        "lr": f"{hparams['lr']} -> {hparams['lr_final']}",
    }
    initial = load_initial_stats(hparams["output_folder"])
    if initial is not None:
        card["validation EER before triplet training"] = (
            f"{float(initial['EER']):.2f}%"
        )
    folder = _export(
        hparams, hparams["pretrained_folder"], best.meta["threshold"], card
    )
    logger.info(
        "exported epoch %s (validation EER %.2f%%) to %s",
        best.meta.get("epoch"),
        best.meta["EER"],
        folder,
    )
    return folder
