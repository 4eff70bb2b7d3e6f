"""Starting a training stage from an exported model (fine-tuning).

``init_from: pretrained`` with ``init_pretrained: <export folder>`` (in
``softmax.yaml`` or ``triplet.yaml``) starts the stage from an export's
embedding model and feature normalizer instead of random weights (the
softmax stage still gets a new classifier, one class per speaker of the
new data).  :func:`init_from_pretrained` loads the export the safe way
(:func:`deep_speaker_sb.inference.load_without_yaml`: plain JSON and
tensors, no code run) after checking that the YAML builds the same model:
the same features, normalization and ResCNN; a mismatch is one
:class:`~deep_speaker_sb.errors.ConfigError` naming every difference.

The scripts load the export only on a fresh start: a resumed run takes
its own checkpoint.

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from speechbrain.utils.logger import get_logger

from deep_speaker_sb.checkpoints import input_config, unwrap
from deep_speaker_sb.errors import ConfigError
from deep_speaker_sb.export import check_export_folder
from deep_speaker_sb.inference import load_without_yaml
from deep_speaker_sb.sb_compat import load_norm_statistics, norm_statistics
from deep_speaker_sb.utils import Pathlike

logger = get_logger(__name__)

#: ``init_from`` value that starts from an export folder.
PRETRAINED = "pretrained"

#: The YAML key of a setting, where it differs from the config's name.
YAML_NAMES = {"kind": "feature_type"}


def check_init_options(hparams: Mapping[str, Any], choices: tuple) -> None:
    """Checks ``init_from`` and ``init_pretrained`` of a stage's YAML.

    Arguments
    ---------
    hparams : mapping
        Uses ``init_from`` and ``init_pretrained``.
    choices : tuple of str
        The stage's ``init_from`` values.

    Raises
    ------
    ConfigError
        For an unknown ``init_from``, ``pretrained`` without an export
        folder, or an export folder with another ``init_from``.

    Example
    -------
    >>> check_init_options({"init_from": "scratch",
    ...                     "init_pretrained": None}, ("scratch",))
    >>> check_init_options({"init_from": "pretrained",
    ...                     "init_pretrained": None},
    ...                    ("scratch", "pretrained"))
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.ConfigError: init_from: pretrained needs...
    """
    init_from, folder = hparams["init_from"], hparams["init_pretrained"]
    if init_from not in choices:
        raise ConfigError(
            f"init_from must be one of {', '.join(choices)}, got {init_from!r}"
        )
    if init_from == PRETRAINED and not folder:
        raise ConfigError(
            "init_from: pretrained needs init_pretrained: <export folder> "
            "(e.g. --init_pretrained results/triplet/1986/pretrained)"
        )
    if init_from != PRETRAINED and folder:
        raise ConfigError(
            f"init_pretrained is set ({folder}) but init_from is "
            f"{init_from!r}; set init_from: pretrained to start from it, "
            "or init_pretrained: null"
        )


def model_differences(
    export: Mapping[str, torch.nn.Module], yaml: Mapping[str, torch.nn.Module]
) -> list[str]:
    """The settings in which two sets of modules differ, as
    ``"name <export value> (YAML: <value>)"``.

    Compares the input settings (:func:`~deep_speaker_sb.checkpoints.
    input_config`: feature type, sample rate, bands, normalization) and the
    ResCNN's constructor arguments (``channels``, ``emb_dim``, ``pooling``,
    ...).

    Example
    -------
    >>> from deep_speaker_sb.lobes.rescnn import ResCNN
    >>> model_differences({"embedding_model": ResCNN(channels=(4,))},
    ...                   {"embedding_model": ResCNN(channels=(8,))})
    ['channels [4] (YAML: [8])']
    """
    pairs: dict[str, tuple[Any, Any]] = {}
    old, new = input_config(export), input_config(yaml)
    for key in sorted(old.keys() & new.keys()):
        pairs[YAML_NAMES.get(key, key)] = (old[key], new[key])
    old = unwrap(export["embedding_model"]).config
    new = unwrap(yaml["embedding_model"]).config
    for key in old:
        if key in new:
            pairs.setdefault(key, (old[key], new[key]))
    return [
        f"{key} {_plain(a)!r} (YAML: {_plain(b)!r})"
        for key, (a, b) in pairs.items()
        if _plain(a) != _plain(b)
    ]


def init_from_pretrained(
    folder: Pathlike, modules: Mapping[str, torch.nn.Module]
) -> dict[str, Any]:
    """Loads an export's embedding model and normalizer into ``modules``.

    Arguments
    ---------
    folder : Pathlike
        An export folder (``hyperparams.yaml``, ``embedding_model.ckpt``,
        ``mean_var_norm.ckpt``, ``config.json``, ...).
    modules : mapping
        The stage's ``compute_features``, ``mean_var_norm`` and
        ``embedding_model`` (as its YAML builds them).

    Returns
    -------
    dict
        The export's input settings (:func:`~deep_speaker_sb.checkpoints.
        input_config`).

    Raises
    ------
    MissingFileError
        When the folder is not a complete export (or lacks
        ``config.json``).
    ConfigError
        When the YAML builds another model than the export's: one line
        naming each setting that differs.

    Example
    -------
    >>> import tempfile, pathlib
    >>> from speechbrain.processing.features import InputNormalization
    >>> from deep_speaker_sb.export import export_pretrained
    >>> from deep_speaker_sb.features import Features
    >>> from deep_speaker_sb.lobes.rescnn import ResCNN
    >>> def parts(channels):
    ...     return {"compute_features": Features(),
    ...             "mean_var_norm": InputNormalization(norm_type="sentence"),
    ...             "embedding_model": ResCNN(channels=channels, emb_dim=8,
    ...                                       blocks_per_stage=1)}
    >>> trained = parts((4,))
    >>> folder = export_pretrained(
    ...     pathlib.Path(tempfile.mkdtemp()) / "pretrained",
    ...     threshold=0.5, card={}, **trained)
    >>> fresh = parts((4,))
    >>> _ = init_from_pretrained(folder, fresh)
    >>> w = "embedding_model"
    >>> bool(torch.equal(fresh[w].state_dict()["affine.weight"],
    ...                  trained[w].state_dict()["affine.weight"]))
    True
    >>> init_from_pretrained(folder, parts((8,)))
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.ConfigError: ...channels [4] (YAML: [8])...
    """
    folder = check_export_folder(folder)
    export = load_without_yaml(folder).mods
    differ = model_differences(export, modules)
    if differ:
        raise ConfigError(
            f"the export {folder} holds another model than the YAML "
            f"builds: {', '.join(differ)}; set these keys to the export's "
            f"values (see {Path(folder) / 'config.json'})"
        )
    model = unwrap(modules["embedding_model"])
    model.load_state_dict(export["embedding_model"].state_dict())
    norm = unwrap(modules["mean_var_norm"])
    load_norm_statistics(norm, norm_statistics(export["mean_var_norm"]))
    logger.info("initialized the embedding model from the export %s", folder)
    return input_config(export)


def _plain(value: Any) -> Any:
    """Tuples as lists, so that YAML lists and JSON arrays compare."""
    return list(value) if isinstance(value, tuple) else value
