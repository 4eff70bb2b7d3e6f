"""What both training stages share: :class:`EmbeddingBrain`.

The softmax and triplet Brains both embed batches of waveforms with
:func:`deep_speaker_sb.embedding.compute_embeddings`, augment their
training batches the same way (``wav_augment``, replicating the labels;
optionally ``channel_augment`` on the waveforms and ``feature_augment``
on the features),
end a validation epoch the same way (anneal the learning rate, log train
and valid stats) and need plain batch norm when a distributed run trains
on CPU.  Each stage Brain extends :class:`EmbeddingBrain` and overrides
only its own hooks.

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import speechbrain as sb
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel

from deep_speaker_sb.embedding import compute_embeddings
from deep_speaker_sb.errors import ConfigError


def _same_rows(
    name: str, augment: Any, x: Tensor, lens: Tensor
) -> tuple[Tensor, Tensor]:
    """``augment(x, lens)``, checked to keep the rows of the batch."""
    out, out_lens = augment(x, lens)
    if out.shape[0] != x.shape[0]:
        raise ConfigError(
            f"{name} turned {x.shape[0]} examples into {out.shape[0]}; it "
            "must keep the batch (concat_original: False, repeat_augment: 1)"
        )
    return out, out_lens


class EmbeddingBrain(sb.Brain):
    """A Brain whose forward pass is the embedding of a batch of audio.

    Expects the modules ``compute_features``, ``mean_var_norm`` and
    ``embedding_model`` and the hparams ``augment``, ``wav_augment``,
    ``lr_annealing`` and ``train_logger``; batches carry ``sig`` (padded
    waveforms and their relative lengths).

    With ``augment: True``, training batches (never validation or test
    ones) pass through ``wav_augment`` (SpeechBrain's ``Augmenter``)
    before the features; when it concatenates the original waveforms the
    batch grows, and each stage's ``compute_objectives`` takes its labels
    through :meth:`augmented_labels`.  Two more options act on training
    batches only, each keeping the batch as it is: ``channel_sim: True``
    passes the waveforms (after ``wav_augment``) through
    ``channel_augment`` (a simulated telephone channel), and
    ``spec_augment: True`` passes the normalized features through
    ``feature_augment`` (time and frequency masks).  Missing keys mean
    False (a YAML older than them).

    Example
    -------
    >>> import torch
    >>> from speechbrain.processing.features import InputNormalization
    >>> from deep_speaker_sb.features import Features
    >>> from deep_speaker_sb.lobes.rescnn import ResCNN
    >>> brain = EmbeddingBrain(modules={
    ...     "compute_features": Features(),
    ...     "mean_var_norm": InputNormalization(norm_type="sentence"),
    ...     "embedding_model": ResCNN(channels=(4,), emb_dim=8)})
    >>> from speechbrain.dataio.batch import PaddedBatch
    >>> batch = PaddedBatch([{"sig": torch.rand(8000)},
    ...                      {"sig": torch.rand(6000)}])
    >>> brain.compute_forward(batch, sb.Stage.VALID).shape
    torch.Size([2, 8])

    Augmented training: the original batch plus one augmented copy.

    >>> from speechbrain.augment.augmenter import Augmenter
    >>> from speechbrain.augment.time_domain import DropFreq
    >>> from types import SimpleNamespace
    >>> brain.hparams = SimpleNamespace(augment=True, wav_augment=Augmenter(
    ...     concat_original=True, augmentations=[DropFreq()]))
    >>> emb = brain.compute_forward(batch, sb.Stage.TRAIN)
    >>> emb.shape, brain.augmented_labels(torch.tensor([3, 5]), emb,
    ...                                   sb.Stage.TRAIN)
    (torch.Size([4, 8]), tensor([3, 5, 3, 5]))
    >>> brain.compute_forward(batch, sb.Stage.VALID).shape  # never there
    torch.Size([2, 8])
    """

    def compute_forward(self, batch: Any, stage: sb.Stage) -> Tensor:
        """Embeds a batch of waveforms: ``[batch, emb_dim]``.

        The stage's :meth:`before_augment` comes first.  Then, in
        training with ``hparams.augment``, the waveforms pass through
        ``hparams.wav_augment`` (the batch may grow), then with
        ``channel_sim`` through ``hparams.channel_augment``; with
        ``spec_augment`` the features pass through
        ``hparams.feature_augment``.
        """
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        wavs, lens = self.before_augment(wavs, lens, stage)
        if self._augments(stage):
            wavs, lens = self.hparams.wav_augment(wavs, lens)
        if self._option("channel_sim", stage):
            wavs, lens = _same_rows(
                "channel_augment", self.hparams.channel_augment, wavs, lens
            )
        wavs, lens = self.extra_examples(wavs, lens, stage)
        feature_augment = None
        if self._option("spec_augment", stage):
            feature_augment = functools.partial(
                _same_rows, "feature_augment", self.hparams.feature_augment
            )
        return compute_embeddings(self.modules, wavs, lens, feature_augment)

    def before_augment(
        self, wavs: Tensor, lens: Tensor, stage: sb.Stage
    ) -> tuple[Tensor, Tensor]:
        """A stage's change to the rows of a batch before ``wav_augment``;
        none here (the softmax stage's speed-perturbed speakers)."""
        del stage
        return wavs, lens

    def extra_examples(
        self, wavs: Tensor, lens: Tensor, stage: sb.Stage
    ) -> tuple[Tensor, Tensor]:
        """Rows a stage appends to a (augmented) batch before embedding
        it; none here (the softmax stage's non-speech examples)."""
        del stage
        return wavs, lens

    def augmented_labels(
        self, labels: Tensor, predictions: Tensor, stage: sb.Stage
    ) -> Tensor:
        """The labels of the rows of ``predictions`` (``compute_forward``).

        In augmented training, ``labels`` (one per example of the batch)
        replicated as ``wav_augment`` replicated the waveforms; otherwise
        ``labels`` itself.

        Arguments
        ---------
        labels : torch.Tensor
            One label per example of the batch, along dimension 0.
        predictions : torch.Tensor
            What ``compute_forward`` returned for the batch.
        stage : sb.Stage
            The stage.

        Returns
        -------
        torch.Tensor
            One label per row of ``predictions``.

        Raises
        ------
        ConfigError
            If the count does not match (an ``Augmenter`` option whose
            labels SpeechBrain does not replicate correctly, such as
            ``parallel_augment_fixed_bs: True``).
        """
        if not self._augments(stage):
            return labels
        labels = self.hparams.wav_augment.replicate_labels(labels)
        if len(labels) != len(predictions):
            raise ConfigError(
                f"wav_augment made {len(predictions)} examples but "
                f"replicates the labels to {len(labels)}; use the "
                "Augmenter options of the YAML (parallel_augment_fixed_bs "
                "must stay False)"
            )
        return labels

    def _augments(self, stage: sb.Stage) -> bool:
        return stage == sb.Stage.TRAIN and self.hparams.augment

    def _option(self, key: str, stage: sb.Stage) -> bool:
        """Whether the boolean hparam ``key`` (False when missing) is on
        for ``stage`` (training only)."""
        if stage != sb.Stage.TRAIN:
            return False
        value = getattr(self.hparams, key, False)
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be True or False, got {value!r}")
        return value

    def end_validation_epoch(
        self,
        epoch: int,
        valid_stats: Mapping[str, Any],
        meta: Mapping[str, Any],
        **keep: Any,
    ) -> None:
        """Ends a validation epoch: steps ``hparams.lr_annealing``, saves
        a checkpoint (``checkpointer.save_and_keep_only(meta=meta,
        **keep)``), then logs the epoch's train stats
        (``self.train_stats``) and ``valid_stats``.

        The epoch is logged only once its checkpoint is saved: when the
        save fails (a full disk), the next run redoes the epoch from the
        previous checkpoint and ``train_log.txt`` holds it once.

        Arguments
        ---------
        epoch : int
            The epoch that ends.
        valid_stats : mapping
            The validation stats to log.
        meta : mapping
            The checkpoint's meta (the keys it is ranked by, ...).
        **keep
            ``max_keys`` / ``min_keys`` of the checkpoints to keep.
        """
        old_lr, new_lr = self.hparams.lr_annealing(epoch)
        sb.nnet.schedulers.update_learning_rate(self.optimizer, new_lr)
        self.checkpointer.save_and_keep_only(meta=dict(meta), **keep)
        self.hparams.train_logger.log_stats(
            stats_meta={"epoch": epoch, "lr": old_lr},
            train_stats=self.train_stats,
            valid_stats=dict(valid_stats),
        )

    def _wrap_distributed(self) -> None:
        """Wraps the trainable modules in DDP; on CPU keeps plain batch norm.

        SpeechBrain 1.1 converts every batch norm to ``SyncBatchNorm``
        before wrapping modules in DDP, and torch runs ``SyncBatchNorm``
        only on GPU/XPU, so a ``gloo`` run on CPU would fail at its first
        training step.  On CPU the modules are wrapped without that
        conversion (each process then normalizes with its own batch
        statistics, as in plain data parallelism); everything else,
        GPU runs included, is SpeechBrain's own wrapping.
        """
        if not (self.distributed_launch and self.device_type == "cpu"):
            super()._wrap_distributed()
            return
        for name, module in self.modules.items():
            if any(p.requires_grad for p in module.parameters()):
                self.modules[name] = DistributedDataParallel(
                    module,
                    device_ids=None,
                    find_unused_parameters=self.find_unused_parameters,
                )
