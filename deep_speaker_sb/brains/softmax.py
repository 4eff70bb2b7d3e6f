"""Softmax pre-training of the ResCNN: speaker classification.

The embedding model learns to classify the training speakers from random
``sentence_len``-second crops; a linear layer with log-softmax on top of
the L2-normalized embedding is trained with NLL loss.  Validation runs on
the whole segments of ``valid.csv`` (held-out utterances of the same
speakers) and reports the speaker accuracy; the checkpoint with the best
accuracy is kept (along with the most recent one, for resuming).

This module also holds what the triplet stage reuses:

- :func:`check_manifest`, :func:`check_valid_speakers`: cheap checks of
  the manifests before training, with messages that say what to do;
- :func:`manifest_dataset`: a dataset over checked rows, with
  ``{data_root}`` substituted;
- :func:`audio_pipeline`: reads a manifest row's segment (random crop in
  training, whole segment otherwise);
- :func:`compute_embeddings`: features -> sentence normalization -> ResCNN;
- :func:`plain_batchnorm_on_cpu`: keeps ``BatchNorm`` under DDP on CPU.

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import speechbrain as sb
import speechbrain.core
import torch
from speechbrain.dataio.dataio import read_audio
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.utils.data_pipeline import provides, takes
from speechbrain.utils.logger import get_logger
from torch import Tensor

from deep_speaker_sb.data.vivos import resolve_wav
from deep_speaker_sb.errors import UserError
from deep_speaker_sb.utils import Pathlike

logger = get_logger(__name__)

#: Manifest columns the training stages read.
REQUIRED_COLUMNS = ("ID", "duration", "wav", "start", "stop", "spk_id")

_PREP_HINT = "re-run data_prep.py (or train without skip_prep)"


def check_manifest(
    csv_path: Pathlike, data_root: Pathlike
) -> list[dict[str, str]]:
    """Reads a manifest and checks it before any training starts.

    Checks that the file exists and has rows, the required columns, sane
    segment bounds, and that every WAV it names exists (each distinct
    path is checked once, so it stays cheap).

    Arguments
    ---------
    csv_path : Pathlike
        ``train.csv``, ``valid.csv`` or ``test.csv``.
    data_root : Pathlike
        The prepared folder substituted for ``{data_root}``.

    Returns
    -------
    list of dict
        The rows, as read by :class:`csv.DictReader`.

    Raises
    ------
    UserError
        With a message naming the file and what to do.

    Example
    -------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "train.csv").write_text(",".join(REQUIRED_COLUMNS) + "\\n")
    >>> check_manifest(d / "train.csv", d)
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.UserError: manifest ... has no rows; ...
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise UserError(f"manifest {csv_path} not found; {_PREP_HINT}")
    with open(csv_path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [
            c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])
        ]
        rows = list(reader)
    if missing:
        raise UserError(
            f"manifest {csv_path} lacks columns {missing}; {_PREP_HINT}"
        )
    if not rows:
        raise UserError(f"manifest {csv_path} has no rows; {_PREP_HINT}")
    seen: set[str] = set()
    for row in rows:
        try:
            start, stop = int(row["start"]), int(row["stop"])
        except ValueError:
            start, stop = 0, -1
        if not 0 <= start < stop:
            raise UserError(
                f"manifest {csv_path}, row {row['ID']}: bad segment bounds "
                f"start={row['start']} stop={row['stop']}; {_PREP_HINT}"
            )
        wav = resolve_wav(row["wav"], data_root)
        if wav not in seen:
            if not os.path.isfile(wav):
                raise UserError(
                    f"audio file {wav} (manifest {csv_path.name}, row "
                    f"{row['ID']}) does not exist; {_PREP_HINT}"
                )
            seen.add(wav)
    return rows


def check_valid_speakers(
    train_rows: list[Mapping[str, str]], valid_rows: list[Mapping[str, str]]
) -> None:
    """Checks that every validation speaker is a training speaker.

    Example
    -------
    >>> check_valid_speakers([{"spk_id": "A"}], [{"spk_id": "A"}])
    >>> check_valid_speakers([{"spk_id": "A"}], [{"spk_id": "B"}])
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.UserError: validation speakers ['B'] ...
    """
    train_spk = {r["spk_id"] for r in train_rows}
    unknown = sorted({r["spk_id"] for r in valid_rows} - train_spk)
    if unknown:
        shown = unknown[:5] + (["..."] if len(unknown) > 5 else [])
        raise UserError(
            f"validation speakers {shown} never occur in the training "
            f"manifest, so they cannot be classified; {_PREP_HINT}"
        )


def manifest_dataset(
    rows: list[Mapping[str, str]], data_root: Pathlike
) -> DynamicItemDataset:
    """A ``DynamicItemDataset`` over checked manifest rows.

    Arguments
    ---------
    rows : list of dict
        Rows from :func:`check_manifest`.
    data_root : Pathlike
        Substituted for ``{data_root}`` in the ``wav`` column.

    Returns
    -------
    DynamicItemDataset
        Keyed by ``ID``; ``duration`` is a float, ``wav`` a full path.

    Example
    -------
    >>> rows = [{"ID": "u_0", "duration": "1.5", "wav": "{data_root}/u.wav",
    ...          "start": "0", "stop": "12000", "spk_id": "S1"}]
    >>> data = manifest_dataset(rows, "/prep")
    >>> data.set_output_keys(["id", "wav", "duration"])
    >>> data[0]
    {'id': 'u_0', 'wav': '/prep/u.wav', 'duration': 1.5}
    """
    data = {}
    for row in rows:
        item = {k: v for k, v in row.items() if k != "ID"}
        item["wav"] = resolve_wav(row["wav"], data_root)
        item["duration"] = float(row["duration"])
        data[row["ID"]] = item
    return DynamicItemDataset(data)


def audio_pipeline(
    sentence_len: float | None, sample_rate: int, *, random_crop: bool
) -> Callable:
    """Makes the ``wav, start, stop -> sig`` dynamic item.

    Arguments
    ---------
    sentence_len : float, optional
        Crop length in seconds; ``None`` reads whole segments.
    sample_rate : int
        Sample rate of the prepared WAVs.
    random_crop : bool
        True: a random ``sentence_len`` crop of longer segments (training);
        False: the whole segment.  Shorter segments are taken whole (the
        batch collation pads them and passes their relative lengths).

    Returns
    -------
    callable
        A pipeline function for ``DynamicItemDataset.add_dynamic_item``.

    Example
    -------
    >>> import tempfile, pathlib, soundfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.wav"
    >>> soundfile.write(p, torch.rand(16000).numpy() - 0.5, 8000)
    >>> crop = audio_pipeline(1.0, 8000, random_crop=True)
    >>> crop.func(str(p), "1000", "13000").shape
    torch.Size([8000])
    >>> whole = audio_pipeline(1.0, 8000, random_crop=False)
    >>> whole.func(str(p), "1000", "13000").shape
    torch.Size([12000])
    """
    seg = None if sentence_len is None else round(sentence_len * sample_rate)

    @takes("wav", "start", "stop")
    @provides("sig")
    def pipeline(wav: str, start: Any, stop: Any) -> Tensor:
        start, stop = int(start), int(stop)
        if random_crop and seg is not None and stop - start > seg:
            start += int(torch.randint(0, stop - start - seg + 1, ()).item())
            stop = start + seg
        return read_audio({"file": wav, "start": start, "stop": stop})

    return pipeline


def compute_embeddings(
    modules: Mapping[str, torch.nn.Module], wavs: Tensor, lens: Tensor
) -> Tensor:
    """Waveforms -> features -> sentence normalization -> ResCNN embedding.

    Arguments
    ---------
    modules : mapping
        Holds ``compute_features``, ``mean_var_norm``, ``embedding_model``.
    wavs : torch.Tensor
        Padded waveforms ``[batch, samples]``.
    lens : torch.Tensor
        Relative lengths ``[batch]``.

    Returns
    -------
    torch.Tensor
        L2-normalized embeddings ``[batch, emb_dim]``.

    Example
    -------
    >>> from speechbrain.processing.features import InputNormalization
    >>> from deep_speaker_sb.features import Features
    >>> from deep_speaker_sb.lobes.rescnn import ResCNN
    >>> modules = dict(
    ...     compute_features=Features(),
    ...     mean_var_norm=InputNormalization(norm_type="sentence"),
    ...     embedding_model=ResCNN(channels=(4, 4, 4, 4), emb_dim=8),
    ... )
    >>> compute_embeddings(modules, torch.rand(2, 8000), torch.ones(2)).shape
    torch.Size([2, 8])
    """
    feats = modules["compute_features"](wavs)
    feats = modules["mean_var_norm"](feats, lens)
    return modules["embedding_model"](feats, lens)


class _NoSyncBatchNorm:
    """Stand-in for ``SyncBatchNorm`` whose conversion changes nothing."""

    @staticmethod
    def convert_sync_batchnorm(module: torch.nn.Module, *args, **kwargs):
        return module


@contextlib.contextmanager
def plain_batchnorm_on_cpu(brain: sb.Brain) -> Iterator[None]:
    """Keeps plain ``BatchNorm`` when a DDP run on CPU wraps its modules.

    SpeechBrain 1.1 converts every batch norm to ``SyncBatchNorm`` when
    it wraps modules in DDP (in ``Brain.on_fit_start``), and torch
    supports ``SyncBatchNorm`` only on GPU/XPU, so a ``gloo`` run on CPU
    would fail at its first training step.  SpeechBrain has no option for
    this; within this context, and only for a distributed run on CPU, the
    conversion is skipped (each process then normalizes with its own batch
    statistics, as in plain data parallelism).  GPU runs are unchanged.

    Arguments
    ---------
    brain : speechbrain.Brain
        The brain being set up.

    Example
    -------
    >>> class MyBrain(sb.Brain):
    ...     def on_fit_start(self):
    ...         with plain_batchnorm_on_cpu(self):
    ...             super().on_fit_start()
    """
    if not (brain.distributed_launch and brain.device_type == "cpu"):
        yield
        return
    original = speechbrain.core.SyncBatchNorm
    speechbrain.core.SyncBatchNorm = _NoSyncBatchNorm
    try:
        yield
    finally:
        speechbrain.core.SyncBatchNorm = original


class SpeakerClassifier(torch.nn.Module):
    """Scaled cosine softmax over the training speakers.

    The embeddings are L2-normalized, so a plain linear layer would start
    with tiny logits and learn slowly; the logits are instead ``scale``
    times the cosine between the (dropped-out) embedding and each
    speaker's weight vector (NormFace), followed by log-softmax.

    Arguments
    ---------
    input_size : int
        Embedding dimension.
    n_speakers : int
        Number of training speakers.
    dropout : float
        Dropout probability on the embedding.
    scale : float
        Logit scale (inverse temperature).

    Example
    -------
    >>> clf = SpeakerClassifier(32, n_speakers=5)
    >>> log_probs = clf(torch.rand(2, 32))
    >>> log_probs.shape, bool(log_probs.exp().sum(-1).allclose(torch.ones(2)))
    (torch.Size([2, 5]), True)
    """

    def __init__(
        self,
        input_size: int,
        n_speakers: int,
        dropout: float = 0.0,
        scale: float = 16.0,
    ):
        super().__init__()
        self.dropout = torch.nn.Dropout(dropout)
        self.weight = torch.nn.Parameter(torch.empty(n_speakers, input_size))
        torch.nn.init.xavier_uniform_(self.weight)
        self.scale = scale

    def forward(self, embeddings: Tensor) -> Tensor:
        """``[batch, input_size]`` -> log-probabilities ``[batch, n_spk]``."""
        x = torch.nn.functional.normalize(self.dropout(embeddings), dim=-1)
        w = torch.nn.functional.normalize(self.weight, dim=-1)
        return torch.log_softmax(self.scale * x @ w.t(), dim=-1)


def anneal_and_log(
    brain: sb.Brain, epoch: int, valid_stats: Mapping[str, Any]
) -> None:
    """End of a validation epoch, shared by both stages' brains: steps
    ``hparams.lr_annealing`` and logs the epoch's train and valid stats.

    Arguments
    ---------
    brain : speechbrain.Brain
        Has ``optimizer``, ``train_stats`` and ``hparams.lr_annealing`` /
        ``hparams.train_logger``.
    epoch : int
        The epoch that ends.
    valid_stats : mapping
        The validation stats to log.
    """
    old_lr, new_lr = brain.hparams.lr_annealing(epoch)
    sb.nnet.schedulers.update_learning_rate(brain.optimizer, new_lr)
    brain.hparams.train_logger.log_stats(
        stats_meta={"epoch": epoch, "lr": old_lr},
        train_stats=brain.train_stats,
        valid_stats=valid_stats,
    )


class SoftmaxBrain(sb.Brain):
    """Trains ``embedding_model`` + ``classifier`` to classify speakers.

    Expects the modules ``compute_features``, ``mean_var_norm``,
    ``embedding_model``, ``classifier`` and the hparams ``compute_cost``,
    ``lr_annealing``, ``train_logger``.
    """

    def compute_forward(
        self, batch: Any, stage: sb.Stage
    ) -> tuple[Tensor, Tensor]:
        """Returns the log-probabilities of the speakers ``[B, n_spk]``."""
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        embeddings = compute_embeddings(self.modules, wavs, lens)
        return self.modules.classifier(embeddings), lens

    def compute_objectives(
        self, predictions: tuple[Tensor, Tensor], batch: Any, stage: sb.Stage
    ) -> Tensor:
        """NLL loss; counts correct classifications outside training."""
        log_probs, _ = predictions
        spk = batch.spk_id_encoded.data.to(log_probs.device)  # [B, 1]
        loss = self.hparams.compute_cost(log_probs.unsqueeze(1), spk)
        if stage != sb.Stage.TRAIN:
            self.n_correct += int((log_probs.argmax(-1) == spk[:, 0]).sum())
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
            anneal_and_log(self, epoch, stats)
            self.checkpointer.save_and_keep_only(
                meta={"ACC": acc, "epoch": epoch}, max_keys=["ACC"]
            )
        else:
            self.hparams.train_logger.log_stats(
                stats_meta={"Epoch loaded": self.hparams.epoch_counter.current},
                test_stats=stats,
            )

    def on_fit_start(self):
        """SpeechBrain's setup, with plain batch norm for DDP on CPU."""
        with plain_batchnorm_on_cpu(self):
            super().on_fit_start()


def dataio_prep(
    hparams: Mapping[str, Any],
) -> tuple[DynamicItemDataset, DynamicItemDataset, CategoricalEncoder]:
    """Builds the training and validation sets and the label encoder.

    Reads ``train_annotation`` and ``valid_annotation`` (checked first with
    :func:`check_manifest` / :func:`check_valid_speakers`), with
    ``{data_root}`` replaced by ``prep_folder`` (:func:`manifest_dataset`).
    The label encoder is loaded from, or created and saved to,
    ``label_encoder_file``.

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
    data_root = hparams["prep_folder"]
    train_rows = check_manifest(hparams["train_annotation"], data_root)
    valid_rows = check_manifest(hparams["valid_annotation"], data_root)
    check_valid_speakers(train_rows, valid_rows)

    train_data = manifest_dataset(train_rows, data_root)
    valid_data = manifest_dataset(valid_rows, data_root)
    sr = hparams["sample_rate"]
    train_data.add_dynamic_item(
        audio_pipeline(hparams["sentence_len"], sr, random_crop=True)
    )
    valid_data.add_dynamic_item(audio_pipeline(None, sr, random_crop=False))

    label_encoder = CategoricalEncoder()

    @takes("spk_id")
    @provides("spk_id_encoded")
    def label_pipeline(spk_id: str) -> Tensor:
        return label_encoder.encode_sequence_torch([spk_id])

    for data in (train_data, valid_data):
        data.add_dynamic_item(label_pipeline)
    label_encoder.load_or_create(
        path=hparams["label_encoder_file"],
        from_didatasets=[train_data],
        output_key="spk_id",
    )
    speakers = {r["spk_id"] for r in train_rows}
    label_encoder.expect_len(len(speakers))
    if set(label_encoder.lab2ind) != speakers:
        raise UserError(
            f"{hparams['label_encoder_file']} lists other speakers than the "
            "training manifest (it belongs to another data set); use a new "
            "output_folder or delete it"
        )
    for data in (train_data, valid_data):
        data.set_output_keys(["id", "sig", "spk_id_encoded"])
    return train_data, valid_data, label_encoder
