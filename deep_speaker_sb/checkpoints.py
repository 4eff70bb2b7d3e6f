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
from typing import Any

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


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DataParallel / DDP wrapper, if any.

    Example
    -------
    >>> lin = torch.nn.Linear(2, 2)
    >>> unwrap(torch.nn.DataParallel(lin)) is lin, unwrap(lin) is lin
    (True, True)
    """
    return getattr(module, "module", module)


def input_config(modules: Mapping[str, torch.nn.Module]) -> dict[str, Any]:
    """The settings that shape the model's input: the feature front end's
    arguments and the normalization type (as far as ``modules`` holds
    them).  Both stages store them in every checkpoint's metadata
    (``input``), and :func:`load_best_parts` compares them on load.

    Example
    -------
    >>> from speechbrain.processing.features import InputNormalization
    >>> from deep_speaker_sb.features import Features
    >>> input_config({"compute_features": Features(n_mels=40),
    ...               "mean_var_norm": InputNormalization("global")})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'kind': 'fbank', 'sample_rate': 8000, 'n_mels': 40, 'n_mfcc': 40,
     'feature_norm': 'global'}
    """
    config: dict[str, Any] = {}
    if "compute_features" in modules:
        config.update(unwrap(modules["compute_features"]).config)
    if "mean_var_norm" in modules:
        norm = modules["mean_var_norm"]
        config["feature_norm"] = unwrap(norm).norm_type
    return config


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
        When its weights do not fit the model of the YAML, or it was
        trained on other input (:func:`input_config`: feature type,
        sample rate, bands, normalization).

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
    saved, now = ckpt.meta.get("input") or {}, input_config(modules)
    differ = sorted(k for k in saved.keys() & now.keys() if saved[k] != now[k])
    if differ:
        diffs = ", ".join(
            f"{k} {saved[k]!r} (YAML: {now[k]!r})" for k in differ
        )
        raise ConfigError(
            f"checkpoint {ckpt.path} was trained with other input settings: "
            f"{diffs}; give both stages the same settings"
        )
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
