"""Softmax pre-training of the ResCNN: speaker classification.

The embedding model learns to classify the training speakers from random
``sentence_len``-second crops: a cosine classifier
(:class:`SpeakerClassifier`) on top of the L2-normalized embedding,
trained with a scaled cosine softmax or additive angular margin loss
(:class:`deep_speaker_sb.losses.SpeakerSoftmaxLoss`).  Validation runs on
the whole segments of ``valid.csv`` (held-out utterances of the same
speakers) and reports the speaker accuracy; the checkpoint with the best
accuracy is kept (along with the most recent one, for resuming).

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import speechbrain as sb
import torch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.utils.data_pipeline import provides, takes
from torch import Tensor
from torch.utils.data import DataLoader

from deep_speaker_sb.augment import SpeakerSpeeds
from deep_speaker_sb.brains.base import EmbeddingBrain
from deep_speaker_sb.checkpoints import input_config
from deep_speaker_sb.data.shards import softmax_shard_data, use_shards
from deep_speaker_sb.dataio import (
    audio_pipeline,
    check_valid_speakers,
    read_manifest,
    segment_dataset,
)
from deep_speaker_sb.errors import DataError
from deep_speaker_sb.losses import no_speaker_loss
from deep_speaker_sb.speech import NONSPEECH_KINDS, nonspeech_signal

#: The non-speech kinds of training (all but the one-sample file: a
#: training row is as long as its batch).
TRAINING_NONSPEECH = tuple(k for k in NONSPEECH_KINDS if k != "one sample")


class SpeakerClassifier(torch.nn.Module):
    """Cosine classifier over the training speakers.

    Gives the cosine between the (dropped-out) embedding and each
    speaker's weight vector; the loss
    (:class:`deep_speaker_sb.losses.SpeakerSoftmaxLoss`) scales them,
    with or without an angular margin.  A plain linear layer on the
    L2-normalized embedding would start with tiny logits and learn slowly.

    Arguments
    ---------
    input_size : int
        Embedding dimension.
    n_speakers : int
        Number of training speakers.
    dropout : float
        Dropout probability on the embedding.

    Example
    -------
    >>> clf = SpeakerClassifier(32, n_speakers=5)
    >>> cosines = clf(torch.rand(2, 32))
    >>> cosines.shape, bool(cosines.abs().max() <= 1)
    (torch.Size([2, 5]), True)
    """

    def __init__(self, input_size: int, n_speakers: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = torch.nn.Dropout(dropout)
        self.weight = torch.nn.Parameter(torch.empty(n_speakers, input_size))
        torch.nn.init.xavier_uniform_(self.weight)

    def forward(self, embeddings: Tensor) -> Tensor:
        """``[batch, input_size]`` -> cosines ``[batch, n_speakers]``."""
        x = torch.nn.functional.normalize(self.dropout(embeddings), dim=-1)
        w = torch.nn.functional.normalize(self.weight, dim=-1)
        return x @ w.t()


class SoftmaxBrain(EmbeddingBrain):
    """Trains ``embedding_model`` + ``classifier`` to classify speakers.

    Expects, besides what :class:`~deep_speaker_sb.brains.base.
    EmbeddingBrain` needs, the module ``classifier`` and the hparams
    ``compute_cost`` and ``epoch_counter``.  With ``nonspeech_weight``
    above 0, each training batch also gets ``nonspeech_per_batch``
    generated non-speech signals (:func:`~deep_speaker_sb.speech.
    nonspeech_signal`: silence, noise, tones, DC, hum), pushed away from
    every speaker by :func:`~deep_speaker_sb.losses.no_speaker_loss`
    (times ``nonspeech_weight``, added to the loss).  With
    ``speaker_speeds`` (``hparams.speaker_copies``, a
    :class:`~deep_speaker_sb.augment.SpeakerSpeeds`), training rows are
    played at other speeds as speakers of their own: the classifier has
    ``n_copies`` classes per training speaker, and the validation
    accuracy counts the speakers themselves.
    """

    def before_augment(
        self, wavs: Tensor, lens: Tensor, stage: sb.Stage
    ) -> tuple[Tensor, Tensor]:
        """In training with ``speaker_speeds``, each row played at one of
        its speeds or its own (``hparams.speaker_copies``); the copy of
        each row is kept for :meth:`compute_objectives`."""
        self.speed_copy = None
        copies = self._speaker_copies()
        if stage != sb.Stage.TRAIN or copies.n_copies == 1:
            return wavs, lens
        wavs, lens, self.speed_copy = copies(wavs, lens)
        return wavs, lens

    def _speaker_copies(self) -> SpeakerSpeeds:
        """``hparams.speaker_copies``; no copies in a YAML without it."""
        return getattr(self.hparams, "speaker_copies", None) or SpeakerSpeeds()

    def extra_examples(
        self, wavs: Tensor, lens: Tensor, stage: sb.Stage
    ) -> tuple[Tensor, Tensor]:
        """The non-speech rows of a training batch (``nonspeech_weight``
        above 0), as long as its longest row."""
        self.n_nonspeech = 0
        if stage != sb.Stage.TRAIN or self._nonspeech_weight() <= 0:
            return wavs, lens
        n = int(self.hparams.nonspeech_per_batch)
        rng = np.random.default_rng(int(torch.randint(2**31, ())))
        kinds = rng.choice(TRAINING_NONSPEECH, size=n)
        sr = int(self.hparams.sample_rate)
        extra = torch.stack(
            [nonspeech_signal(k, wavs.shape[1], sr, rng) for k in kinds]
        ).to(wavs)
        self.n_nonspeech = n
        return torch.cat([wavs, extra]), torch.cat([lens, lens.new_ones(n)])

    def _nonspeech_weight(self) -> float:
        return float(getattr(self.hparams, "nonspeech_weight", 0.0))

    def compute_forward(self, batch: Any, stage: sb.Stage) -> Tensor:
        """Returns the cosines with the speakers ``[B, n_spk]`` (then one
        row per non-speech example in training, see the class)."""
        return self.modules.classifier(super().compute_forward(batch, stage))

    def compute_objectives(
        self, predictions: Tensor, batch: Any, stage: sb.Stage
    ) -> Tensor:
        """Softmax (or AAM) loss, plus the no-speaker loss of the
        non-speech rows; counts correct classifications outside
        training."""
        cosines = predictions
        n_extra = (
            getattr(self, "n_nonspeech", 0) if stage == sb.Stage.TRAIN else 0
        )
        if n_extra:
            cosines, nonspeech = cosines[:-n_extra], cosines[-n_extra:]
        spk = batch.spk_id_encoded.data.to(cosines.device)  # [B, 1]
        copies = self._speaker_copies()
        n_speakers = cosines.shape[1] // copies.n_copies
        speed_copy = getattr(self, "speed_copy", None)
        if stage == sb.Stage.TRAIN and speed_copy is not None:
            spk = copies.labels(spk, speed_copy, n_speakers)
        spk = self.augmented_labels(spk, cosines, stage)
        loss = self.hparams.compute_cost(cosines, spk)
        if n_extra:
            loss = loss + self._nonspeech_weight() * no_speaker_loss(
                nonspeech, self.hparams.compute_cost.scale
            )
        if stage != sb.Stage.TRAIN:
            # among the speakers themselves, not their speed copies
            guess = cosines[:, :n_speakers].argmax(-1)
            self.n_correct += int((guess == spk[:, 0]).sum())
            self.n_total += len(spk)
        return loss

    def on_stage_start(self, stage: sb.Stage, epoch: int | None = None):
        """Resets the accuracy counters."""
        self.n_correct = 0
        self.n_total = 0

    def on_stage_end(
        self, stage: sb.Stage, stage_loss: float, epoch: int | None = None
    ):
        """Logs the epoch, anneals the learning rate, saves a checkpoint."""
        if stage == sb.Stage.TRAIN:
            self.train_stats = {"loss": stage_loss}
            return
        acc = self.n_correct / max(self.n_total, 1)
        stats = {"loss": stage_loss, "ACC": round(acc, 6)}
        if stage == sb.Stage.VALID:
            self.end_validation_epoch(
                epoch,
                stats,
                meta={
                    "ACC": acc,
                    "epoch": epoch,
                    "input": input_config(self.modules),
                },
                max_keys=["ACC"],
            )
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )


def dataio_prep(
    hparams: Mapping[str, Any],
) -> tuple[
    DynamicItemDataset | DataLoader,
    DynamicItemDataset | DataLoader,
    CategoricalEncoder,
]:
    """Builds the training and validation sets and the label encoder.

    With ``data_format: shards`` they come from ``train_shards`` and
    ``valid_shards`` instead
    (:func:`deep_speaker_sb.data.shards.softmax_shard_data`): DataLoaders
    that Brain.fit uses as they are.

    Reads ``train_annotation`` and ``valid_annotation`` with
    :func:`~deep_speaker_sb.dataio.read_manifest` (``{data_root}`` is
    ``prep_folder``) and checks that every validation speaker is a
    training speaker.  The label encoder is loaded from, or created and
    saved to, ``label_encoder_file``.

    Arguments
    ---------
    hparams : mapping
        Uses ``prep_folder``, ``train_annotation``, ``valid_annotation``,
        ``label_encoder_file``, ``sentence_len``, ``sample_rate``.

    Returns
    -------
    train_data, valid_data : DynamicItemDataset
        Items ``id``, ``sig``, ``spk_id_encoded``.
    label_encoder : CategoricalEncoder
        Speaker id <-> class index.
    """
    if use_shards(hparams):
        return softmax_shard_data(hparams, _label_encoder)
    data_root = hparams["prep_folder"]
    train_rows = read_manifest(hparams["train_annotation"], data_root)
    valid_rows = read_manifest(hparams["valid_annotation"], data_root)
    check_valid_speakers(train_rows, valid_rows)

    train_data = segment_dataset(train_rows)
    valid_data = segment_dataset(valid_rows)
    sr = hparams["sample_rate"]
    train_data.add_dynamic_item(
        audio_pipeline(
            hparams["sentence_len"],
            sr,
            random_crop=True,
            manifest=hparams["train_annotation"],
        )
    )
    valid_data.add_dynamic_item(
        audio_pipeline(
            None, sr, random_crop=False, manifest=hparams["valid_annotation"]
        )
    )

    # the speakers in order of first appearance (the shard path's order)
    speakers = list(dict.fromkeys(r.spk_id for r in train_rows))
    label_encoder = _label_encoder(hparams, speakers)

    @takes("spk_id")
    @provides("spk_id_encoded")
    def label_pipeline(spk_id: str) -> Tensor:
        return label_encoder.encode_sequence_torch([spk_id])

    for data in (train_data, valid_data):
        data.add_dynamic_item(label_pipeline)
        data.set_output_keys(["id", "sig", "spk_id_encoded"])
    return train_data, valid_data, label_encoder


def _label_encoder(
    hparams: Mapping[str, Any], speakers: list[str]
) -> CategoricalEncoder:
    """Loads ``label_encoder_file``, or creates it from ``speakers``."""
    label_encoder = CategoricalEncoder()
    label_encoder.load_or_create(
        path=hparams["label_encoder_file"], from_iterables=[speakers]
    )
    label_encoder.expect_len(len(speakers))
    if set(label_encoder.lab2ind) != set(speakers):
        raise DataError(
            f"{hparams['label_encoder_file']} lists other speakers than the "
            "training manifest (it belongs to another data set); use a new "
            "output_folder or delete it"
        )
    return label_encoder
