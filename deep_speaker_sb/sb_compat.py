"""The private SpeechBrain members this package relies on, in one place.

SpeechBrain 1.1 offers no public way to read or set the running
statistics of an ``InputNormalization`` (its checkpoint hooks call the
private ``_statistics_dict`` / ``_load_statistics_dict``), nor to get the
mel matrix and the dB conversion of a ``Filterbank`` apart from its
``forward`` (``_create_fbank_matrix``, ``_amplitude_to_DB``).  Every
use goes through one documented function here, so that a SpeechBrain
release that renames or changes them breaks one module, and
``tests/test_sb_compat.py`` says so loudly (presence, parameters, and
values on tiny input) instead of an export or a fine-tuning run
failing later.

:class:`deep_speaker_sb.brains.base.EmbeddingBrain` also overrides
``Brain._wrap_distributed`` (DDP on CPU without ``SyncBatchNorm``), and
``deep_speaker_sb.checkpoints.SafeCheckpointer`` (complete-or-absent
saves) overrides ``Checkpointer._new_checkpoint_dirpath`` and calls
``_custom_checkpoint_dirpath``; :func:`private_api_problems` checks those
hooks too.

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

import inspect
from typing import Any

from speechbrain.core import Brain
from speechbrain.processing.features import Filterbank, InputNormalization
from speechbrain.utils.checkpoints import Checkpointer
from torch import Tensor

#: Each private SpeechBrain member used, with the parameters it must take.
PRIVATE_API: dict[tuple[type, str], tuple[str, ...]] = {
    (InputNormalization, "_statistics_dict"): ("self",),
    (InputNormalization, "_load_statistics_dict"): ("self", "state"),
    (Filterbank, "_create_fbank_matrix"): (
        "self",
        "f_central_mat",
        "band_mat",
    ),
    (Filterbank, "_amplitude_to_DB"): ("self", "x"),
    (Brain, "_wrap_distributed"): ("self",),
    (Checkpointer, "_new_checkpoint_dirpath"): ("self",),
    (Checkpointer, "_custom_checkpoint_dirpath"): ("self", "name"),
}


def private_api_problems() -> list[str]:
    """What the installed SpeechBrain lacks of :data:`PRIVATE_API`.

    Returns
    -------
    list of str
        One line per missing member or changed parameter list (empty when
        all is as this module expects).

    Example
    -------
    >>> private_api_problems()
    []
    """
    problems = []
    for (owner, name), params in PRIVATE_API.items():
        where = f"{owner.__module__}.{owner.__qualname__}.{name}"
        member = getattr(owner, name, None)
        if not callable(member):
            problems.append(f"{where} is gone")
            continue
        found = tuple(inspect.signature(member).parameters)
        if found != params:
            problems.append(
                f"{where} takes {found}, not {params} as "
                "deep_speaker_sb/sb_compat.py expects"
            )
    return problems


def norm_statistics(norm: InputNormalization) -> dict[str, Any]:
    """The running statistics of ``norm`` (what its checkpoint saves).

    Arguments
    ---------
    norm : InputNormalization
        A SpeechBrain input normalizer.

    Returns
    -------
    dict
        ``count``, ``glob_mean`` and ``glob_std`` (the tensors
        themselves, not copies).

    Example
    -------
    >>> import torch
    >>> norm = InputNormalization(norm_type="global")
    >>> _ = norm(torch.ones(2, 5, 3), torch.ones(2))
    >>> stats = norm_statistics(norm)
    >>> sorted(stats), stats["glob_mean"].tolist()
    (['count', 'glob_mean', 'glob_std'], [1.0, 1.0, 1.0])
    """
    return norm._statistics_dict()


def load_norm_statistics(
    norm: InputNormalization, statistics: dict[str, Any]
) -> None:
    """Sets the running statistics of ``norm`` (as a checkpoint loads them).

    Arguments
    ---------
    norm : InputNormalization
        The normalizer to set.
    statistics : dict
        What :func:`norm_statistics` returned (``count``, ``glob_mean``,
        ``glob_std``).

    Example
    -------
    >>> import torch
    >>> norm = InputNormalization(norm_type="global")
    >>> load_norm_statistics(norm, {"count": 3, "glob_mean": torch.ones(2),
    ...                             "glob_std": torch.ones(2)})
    >>> norm.count, norm.glob_mean.tolist()
    (3, [1.0, 1.0])
    """
    norm._load_statistics_dict(statistics)


def fbank_matrix(filterbank: Filterbank) -> Tensor:
    """The ``[n_stft, n_mels]`` matrix of a frozen ``Filterbank``.

    What its ``forward`` multiplies a power spectrogram by (and builds
    again on every call).

    Arguments
    ---------
    filterbank : Filterbank
        A SpeechBrain filterbank (``freeze=True``, the default).

    Returns
    -------
    torch.Tensor
        The filters, one column each.

    Example
    -------
    >>> fb = Filterbank(n_mels=4, n_fft=16, sample_rate=8000)
    >>> m = fbank_matrix(fb)
    >>> tuple(m.shape), bool((m >= 0).all())
    ((9, 4), True)
    """
    bins = filterbank.all_freqs_mat.shape[1]
    centres = filterbank.f_central.repeat(bins, 1).transpose(0, 1)
    widths = filterbank.band.repeat(bins, 1).transpose(0, 1)
    return filterbank._create_fbank_matrix(centres, widths)


def amplitude_to_db(filterbank: Filterbank, x: Tensor) -> Tensor:
    """``filterbank``'s dB conversion of linear filterbank energies.

    The log, the reference level and the per-sentence floor
    (``top_db`` below the sentence's loudest value) that its ``forward``
    applies after the mel matrix.

    Arguments
    ---------
    filterbank : Filterbank
        A SpeechBrain filterbank (its ``log_mel=True`` settings).
    x : torch.Tensor
        ``[batch, time, n_mels]`` linear energies.

    Returns
    -------
    torch.Tensor
        The same shape, in dB.

    Example
    -------
    >>> import torch
    >>> fb = Filterbank(n_mels=2, n_fft=16, sample_rate=8000)
    >>> amplitude_to_db(fb, torch.tensor([[[1.0, 1e-12]]])).tolist()
    [[[0.0, -80.0]]]
    """
    return filterbank._amplitude_to_DB(x)
