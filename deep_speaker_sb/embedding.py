"""Audio -> embedding: the one path that every caller takes.

Training validation, the triplet loss, the pretrained interface
(:class:`deep_speaker_sb.inference.DeepSpeaker`) and any export all embed
waveforms with :func:`compute_embeddings`: features, then feature
normalization, then the ResCNN, each over the exact frames of every
waveform (:func:`~deep_speaker_sb.features.frame_lengths`, zeroed
padding), so that an utterance's embedding does not depend on what it is
batched with.  Only training batches may pass a ``feature_augment``
(SpecAugment-style masks on the normalized features, ``spec_augment`` in
the YAMLs); every other caller leaves it out.
:class:`Embedder` is what the evaluations and the speaker register need
of a model that embeds files this way.

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import torch
from torch import Tensor

from deep_speaker_sb.features import frame_lengths, zero_padding
from deep_speaker_sb.utils import Pathlike

#: The modules :func:`compute_embeddings` needs, in the order it runs them.
EMBEDDING_MODULES = ("compute_features", "mean_var_norm", "embedding_model")


#: A feature augmentation: ``(feats, lens) -> (feats, lens)``, e.g.
#: SpeechBrain's ``Augmenter`` of ``SpectrogramDrop`` masks.
FeatureAugment = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def compute_embeddings(
    modules: Mapping[str, torch.nn.Module],
    wavs: Tensor,
    lens: Tensor,
    feature_augment: FeatureAugment | None = None,
) -> Tensor:
    """Waveforms -> features -> normalization -> ResCNN embedding.

    Arguments
    ---------
    modules : mapping
        Holds ``compute_features`` (:class:`~deep_speaker_sb.features.
        Features`, or any front end with a centred STFT and its ``hop`` in
        samples), ``mean_var_norm`` (SpeechBrain's
        ``InputNormalization``) and ``embedding_model`` (the ResCNN); a
        ``torch.nn.ModuleDict`` or a plain dict.
    wavs : torch.Tensor
        Padded waveforms ``[batch, samples]`` at the model's sample rate.
    lens : torch.Tensor
        Relative lengths ``[batch]`` in ``(0, 1]``.
    feature_augment : callable, optional
        Training only: applied to the normalized features ``[batch, time,
        n_features]`` and their relative lengths before the ResCNN; it
        must keep the
        batch (:class:`~deep_speaker_sb.brains.base.EmbeddingBrain` passes
        ``hparams.feature_augment`` with ``spec_augment: True``).

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
    >>> emb = compute_embeddings(modules, torch.rand(2, 8000), torch.ones(2))
    >>> emb.shape, bool(emb.norm(dim=1).allclose(torch.ones(2)))
    (torch.Size([2, 8]), True)

    Padding a waveform does not change its embedding:

    >>> _ = modules["embedding_model"].eval()
    >>> wavs = torch.rand(2, 12345)
    >>> alone = compute_embeddings(modules, wavs[:1, :8000], torch.ones(1))
    >>> batch = compute_embeddings(modules, wavs, torch.tensor([8000 / 12345,
    ...                                                         1.0]))
    >>> bool((batch[0] - alone[0]).abs().max() < 1e-5)
    True
    """
    # zero padding and the exact frame count of each waveform, so that
    # padding (what a waveform is batched with) never changes its embedding
    front_end = modules["compute_features"]
    feats = front_end(zero_padding(wavs, lens))
    lens = frame_lengths(lens, wavs.shape[1], feats.shape[1], front_end.hop)
    feats = modules["mean_var_norm"](feats, lens)
    if feature_augment is not None:
        feats, lens = feature_augment(feats, lens)
    return modules["embedding_model"](feats, lens)


@dataclasses.dataclass(frozen=True)
class SpeechEmbeddings:
    """What :meth:`Embedder.encode_speech_files` returns.

    Attributes
    ----------
    embeddings : torch.Tensor
        ``[n, emb_dim]``: the embeddings of the files that passed the
        speech check, in the order of the paths given.
    no_speech : dict
        Index of each other file in the paths given -> why it holds no
        speech (ascending indices).
    """

    embeddings: Tensor
    no_speech: dict[int, str]


class Embedder(Protocol):
    """What the evaluations (:mod:`deep_speaker_sb.evaluation`) and the
    speaker register (:mod:`deep_speaker_sb.register`) need of a model
    that embeds files with :func:`compute_embeddings` (e.g.
    :class:`~deep_speaker_sb.inference.DeepSpeaker`): its decision
    threshold on cosine similarity and batched file embedding, with its
    speech check (:mod:`deep_speaker_sb.speech`) on every file."""

    threshold: float

    def encode_files(
        self, paths: Sequence[Pathlike], batch_size: int = 32
    ) -> torch.Tensor:
        """``[len(paths), emb_dim]`` embeddings of audio files (a file
        that fails the speech check raises
        :class:`~deep_speaker_sb.speech.NoSpeechError`)."""
        ...

    def encode_speech_files(
        self, paths: Sequence[Pathlike], batch_size: int = 32
    ) -> SpeechEmbeddings:
        """The embeddings of the files that pass the speech check, and why
        the others do not (each file read once; ``DeepSpeaker``'s also
        takes ``crops``, which :func:`~deep_speaker_sb.evaluation.
        evaluate_trials` passes on only when it is given crops)."""
        ...
