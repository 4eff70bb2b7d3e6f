"""Loading the model parts of a stage's best checkpoint.

The triplet stage starts from the softmax stage's best checkpoint, and the
export takes the triplet stage's best one; both need only the *model
parts* (the embedding model and the feature normalizer), not the
classifier, optimizer or epoch counter.  :func:`load_best_parts` does
that for both.

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from speechbrain.utils.checkpoints import Checkpoint, Checkpointer

from deep_speaker_sb.errors import ConfigError, MissingFileError
from deep_speaker_sb.utils import Pathlike

#: Checkpoint name (the same in both stages' checkpointers) -> ``modules``
#: key, for the parts that move from one stage to the next.
MODEL_PARTS = {
    "embedding_model": "embedding_model",
    "normalizer": "mean_var_norm",
}


def load_best_parts(
    folder: Pathlike,
    modules: Mapping[str, torch.nn.Module],
    *,
    max_key: str | None = None,
    min_key: str | None = None,
    missing: str,
) -> Checkpoint:
    """Loads the model parts of the best checkpoint in ``folder``.

    Arguments
    ---------
    folder : Pathlike
        A stage's checkpoint folder (``.../save``).
    modules : mapping
        Holds ``embedding_model`` and ``mean_var_norm``.
    max_key, min_key : str, optional
        The checkpoint meta key to maximize (``"ACC"``) or minimize
        (``"EER"``).
    missing : str
        The error message when there is no such checkpoint.

    Returns
    -------
    Checkpoint
        The checkpoint loaded (``path``, ``meta``).

    Raises
    ------
    MissingFileError
        When there is no checkpoint with the key, or it lacks a part.
    ConfigError
        When its weights do not fit the model of the YAML.

    Example
    -------
    >>> import tempfile
    >>> from speechbrain.processing.features import InputNormalization
    >>> from deep_speaker_sb.lobes.rescnn import ResCNN
    >>> modules = {"embedding_model": ResCNN(channels=(4,), emb_dim=8),
    ...            "mean_var_norm": InputNormalization("sentence")}
    >>> load_best_parts(tempfile.mkdtemp(), modules, max_key="ACC",
    ...                 missing="train first")
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.MissingFileError: train first
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(missing)
    checkpointer = Checkpointer(
        folder,
        recoverables={name: modules[key] for name, key in MODEL_PARTS.items()},
    )
    ckpt = checkpointer.find_checkpoint(max_key=max_key, min_key=min_key)
    if ckpt is None:
        raise MissingFileError(missing)
    lacking = [name for name in MODEL_PARTS if name not in ckpt.paramfiles]
    if lacking:
        raise MissingFileError(
            f"checkpoint {ckpt.path} has no {', '.join(lacking)}"
        )
    try:
        checkpointer.load_checkpoint(ckpt)
    except RuntimeError as exc:
        raise ConfigError(
            f"checkpoint {ckpt.path} does not fit the model of this YAML "
            "(the model sections of softmax.yaml and triplet.yaml must be "
            f"the same): {str(exc).splitlines()[0]}"
        ) from exc
    return ckpt
