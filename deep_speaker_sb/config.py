"""The allowed ranges of the recipes' numeric hyperparameters.

``train_softmax.py`` and ``train_triplet.py`` check them (through
:func:`deep_speaker_sb.cli.load_recipe_hparams`) before any work: first
the plain values written in the YAML file and on the command line
(:func:`check_recipe_values`, before HyperPyYAML builds any object, since
some constructors fail on a bad value with an unrelated message), then
the loaded hyperparameters (:func:`check_hparams`, which also sees values
made by ``!ref``).  A value out of range is one
:class:`~deep_speaker_sb.errors.ConfigError` naming the key, the value
and the range; left unchecked, ``--batch_size 0`` or ``--lr -1`` were
tracebacks and ``--emb_dim 0`` trained at chance and exited 0.

Example
-------
>>> check_hparams({"batch_size": 32, "lr": 0.001, "dropout": 0.1})
>>> check_hparams({"batch_size": 0})
Traceback (most recent call last):
...
deep_speaker_sb.errors.ConfigError: batch_size must be an integer >= 1, got 0
>>> check_hparams({"dropout": 2})
Traceback (most recent call last):
...
deep_speaker_sb.errors.ConfigError: dropout must be a number in [0, 1), got 2
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML, YAMLError

from deep_speaker_sb.errors import ConfigError


@dataclass(frozen=True)
class Range:
    """The values one hyperparameter may take.

    Arguments
    ---------
    low, high : float, optional
        The bounds (None: unbounded).
    low_open, high_open : bool
        Whether the bound itself is excluded.
    integer : bool
        Whether only integers are allowed (else any finite number).
    none_ok : bool
        Whether ``null`` is allowed (e.g. "automatic").

    Example
    -------
    >>> r = Range(0, 1, high_open=True)
    >>> r.allows(0.0), r.allows(1.0), r.describe()
    (True, False, 'a number in [0, 1)')
    >>> Range(1, integer=True).describe()
    'an integer >= 1'
    >>> Range().describe(), Range().allows(float("nan"))
    ('a finite number', False)
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    none_ok: bool = False

    def allows(self, value: Any) -> bool:
        """Whether ``value`` lies in the range (and has its type)."""
        if value is None:
            return self.none_ok
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.integer and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if self.low is not None and (
            value < self.low or (self.low_open and value == self.low)
        ):
            return False
        return self.high is None or not (
            value > self.high or (self.high_open and value == self.high)
        )

    def describe(self) -> str:
        """The range in words, for error messages."""
        kind = "an integer" if self.integer else "a number"
        if self.low is not None and self.high is not None:
            left = "(" if self.low_open else "["
            right = ")" if self.high_open else "]"
            text = f"{kind} in {left}{self.low:g}, {self.high:g}{right}"
        elif self.low is not None:
            text = f"{kind} {'>' if self.low_open else '>='} {self.low:g}"
        elif self.high is not None:
            text = f"{kind} {'<' if self.high_open else '<='} {self.high:g}"
        else:
            text = "a finite " + ("integer" if self.integer else "number")
        return f"{text} or null" if self.none_ok else text


_POSITIVE_INT = Range(1, integer=True)
_NON_NEGATIVE_INT = Range(0, integer=True)
_POSITIVE = Range(0, low_open=True)
_NON_NEGATIVE = Range(0)
_FRACTION = Range(0, 1, high_open=True)
_ANY = Range()

#: The numeric keys of ``hparams/softmax.yaml`` and ``triplet.yaml`` and
#: the values they allow (a key a YAML lacks is not checked).
RANGES: dict[str, Range] = {
    # data preparation (as PrepOptions checks them, but before any work)
    "seg_dur": _POSITIVE,
    "min_dur": _POSITIVE,
    "valid_ratio": _FRACTION,
    "num_trials": _NON_NEGATIVE_INT,
    "cal_speakers": _NON_NEGATIVE_INT,
    "num_valid_trials": _POSITIVE_INT,
    "prep_workers": _POSITIVE_INT,
    "shard_size": _POSITIVE_INT,
    "shard_buffer": _POSITIVE_INT,
    # training
    "number_of_epochs": _POSITIVE_INT,
    "batch_size": _POSITIVE_INT,
    "speakers_per_batch": Range(2, integer=True),
    "n_per_speaker": Range(2, integer=True),
    "batches_per_epoch": Range(1, integer=True, none_ok=True),
    "lr": _POSITIVE,
    "lr_final": _POSITIVE,
    "weight_decay": _NON_NEGATIVE,
    "sentence_len": _POSITIVE,
    "ckpt_interval_minutes": _NON_NEGATIVE,
    "num_workers": _NON_NEGATIVE_INT,
    "nonspeech_weight": _NON_NEGATIVE,
    "nonspeech_per_batch": _NON_NEGATIVE_INT,
    # augmentation
    "augment_min": _NON_NEGATIVE_INT,
    "augment_max": _NON_NEGATIVE_INT,
    "noise_snr_low": _ANY,
    "noise_snr_high": _ANY,
    "babble_snr_low": _ANY,
    "babble_snr_high": _ANY,
    # features and model
    "sample_rate": _POSITIVE_INT,
    "n_mels": _POSITIVE_INT,
    "n_mfcc": _POSITIVE_INT,
    "emb_dim": _POSITIVE_INT,
    "blocks_per_stage": _POSITIVE_INT,
    "dropout": _FRACTION,
    # losses
    "aam_margin": _NON_NEGATIVE,
    "logit_scale": _POSITIVE,
    "margin": _NON_NEGATIVE,
}

#: Pairs of keys whose first value may not exceed the second.
ORDERED_PAIRS = (
    ("min_dur", "seg_dur"),
    ("augment_min", "augment_max"),
    ("noise_snr_low", "noise_snr_high"),
    ("babble_snr_low", "babble_snr_high"),
)


def _tagged(value: Any) -> bool:
    """Whether a value read by ruamel carries a tag (``!ref``, ``!new:``)."""
    tag = getattr(value, "tag", None)
    return tag is not None and getattr(tag, "value", None) is not None


def _plain(value: Any) -> bool:
    """Whether ``value`` is data (not an object, a tag or a reference)."""
    if _tagged(value):
        return False
    return value is None or isinstance(value, (bool, int, float, str))


def _check_channels(value: Any) -> None:
    """``channels``: a non-empty list of integers >= 1."""
    if not isinstance(value, (list, tuple)):
        return  # an object or a reference: the loaded value is checked
    if not value or not all(
        not isinstance(c, bool) and isinstance(c, int) and c >= 1 for c in value
    ):
        raise ConfigError(
            "channels must be a non-empty list of integers >= 1 (the "
            f"widths of the ResCNN stages), got {list(value)}"
        )


def check_hparams(hparams: Mapping[str, Any]) -> None:
    """Checks the numeric hyperparameters of :data:`RANGES` present in
    ``hparams`` (and ``channels``); objects and references are left out.

    Arguments
    ---------
    hparams : Mapping
        Loaded hyperparameters, or the plain values of a YAML text.

    Raises
    ------
    ConfigError
        Naming the first key out of range, its value and the range.

    Example
    -------
    >>> check_hparams({"augment_min": 3, "augment_max": 2})
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.ConfigError: augment_min (3) must not exceed ...
    >>> check_hparams({"lr": "fast"})
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.ConfigError: lr must be a number > 0, got 'fast' ...
    >>> check_hparams({"channels": [8, 0]})
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.ConfigError: channels must be a non-empty list...
    """
    for key, allowed in RANGES.items():
        if key not in hparams or not _plain(hparams[key]):
            continue
        value = hparams[key]
        if not allowed.allows(value):
            number = isinstance(value, (int, float)) and not isinstance(
                value, bool
            )
            kind = "" if number or value is None else " (the wrong type)"
            raise ConfigError(
                f"{key} must be {allowed.describe()}, got {value!r}{kind}"
            )
    if "channels" in hparams:
        _check_channels(hparams["channels"])
    for low, high in ORDERED_PAIRS:
        a, b = hparams.get(low), hparams.get(high)
        if (
            _plain(a)
            and _plain(b)
            and isinstance(a, (int, float))
            and isinstance(b, (int, float))
            and a > b
        ):
            raise ConfigError(f"{low} ({a!r}) must not exceed {high} ({b!r})")


def plain_values(text: str) -> dict[str, Any]:
    """The top-level keys of a YAML text whose values are plain numbers,
    strings, booleans, nulls or lists (``!ref``, ``!new:`` ... left out).

    Returns ``{}`` for a text that is not a YAML mapping (the loader
    reports that).

    Example
    -------
    >>> plain_values("lr: 0.1\\nout: !ref <x>/y\\nchannels: [4, 8]\\n")
    {'lr': 0.1, 'channels': [4, 8]}
    """
    try:
        data = YAML(typ="rt").load(text)
    except YAMLError:
        return {}
    if not isinstance(data, Mapping):
        return {}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, list) and not _tagged(value):
            if all(_plain(v) for v in value):
                values[str(key)] = [_unwrap(v) for v in value]
        elif _plain(value):
            values[str(key)] = _unwrap(value)
    return values


def _unwrap(value: Any) -> Any:
    """A ruamel scalar as the plain Python value."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value if not isinstance(value, str) else str(value)
    if isinstance(value, int):
        return int(value)
    return float(value)


def check_recipe_values(yaml_text: str, overrides: str) -> None:
    """Checks the plain values of a recipe YAML and its command-line
    overrides (the overrides win) before anything is built.

    Arguments
    ---------
    yaml_text : str
        The recipe YAML.
    overrides : str
        The overrides as YAML text (``key: value`` lines).

    Raises
    ------
    ConfigError
        As :func:`check_hparams`.

    Example
    -------
    >>> check_recipe_values("lr: 0.1\\nbatch_size: 8\\n", "batch_size: 0")
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.ConfigError: batch_size must be an integer >= ...
    """
    values = plain_values(yaml_text)
    values.update(plain_values(overrides or ""))
    check_hparams(values)
