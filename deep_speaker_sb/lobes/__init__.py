"""Neural building blocks ("lobes") of deep-speaker-sb.

- :mod:`deep_speaker_sb.lobes.rescnn`: the ResCNN speaker-embedding network
  of Deep Speaker (Li et al., 2017).
- :mod:`deep_speaker_sb.lobes.ecapa`: SpeechBrain's ECAPA-TDNN behind the
  same contract, the ResCNN's peer.

An export (:mod:`deep_speaker_sb.export`) records the class of its model
by name (``model_class`` in ``config.json``); :func:`model_class` turns the
name back into a class from :data:`EMBEDDING_MODELS` only, so that reading
an export never imports anything it names.
"""

from __future__ import annotations

import importlib

from torch import nn

from deep_speaker_sb.errors import ConfigError

#: The embedding models an export can hold: class name -> its module.
EMBEDDING_MODELS = {
    "ResCNN": "deep_speaker_sb.lobes.rescnn",
    "EcapaTDNN": "deep_speaker_sb.lobes.ecapa",
}
#: The class of an export whose ``config.json`` names none (the ResCNN
#: exports made before ``model_class``).
DEFAULT_MODEL_CLASS = "ResCNN"


def model_class(name: str) -> type[nn.Module]:
    """The embedding model class of a ``model_class`` name.

    Raises
    ------
    ValueError
        For a name not in :data:`EMBEDDING_MODELS`.

    Example
    -------
    >>> model_class("EcapaTDNN").__module__
    'deep_speaker_sb.lobes.ecapa'
    >>> model_class("os.system")
    Traceback (most recent call last):
    ...
    ValueError: unknown model_class 'os.system' (known: ResCNN, EcapaTDNN)
    """
    module = EMBEDDING_MODELS.get(name) if isinstance(name, str) else None
    if module is None:
        raise ValueError(
            f"unknown model_class {name!r} (known: "
            f"{', '.join(EMBEDDING_MODELS)})"
        )
    return getattr(importlib.import_module(module), name)


def model_class_name(model: nn.Module) -> str:
    """The ``model_class`` name of an embedding model (an instance of one
    of :data:`EMBEDDING_MODELS`, or of a subclass).

    Raises
    ------
    ConfigError
        For any other model (the exports cannot rebuild it).

    Example
    -------
    >>> from deep_speaker_sb.lobes.rescnn import ResCNN
    >>> model_class_name(ResCNN(channels=(4,), emb_dim=8))
    'ResCNN'
    >>> model_class_name(nn.Linear(2, 2))
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.ConfigError: cannot export a Linear: ...
    """
    for name in EMBEDDING_MODELS:
        if isinstance(model, model_class(name)):
            return name
    raise ConfigError(
        f"cannot export a {type(model).__name__}: the exports hold "
        f"{' or '.join(EMBEDDING_MODELS)} embedding models"
    )
