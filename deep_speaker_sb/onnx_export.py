"""ONNX export of the audio -> embedding path, and its int8 copy.

:class:`OnnxEmbedder` is :func:`~deep_speaker_sb.embedding.
compute_embeddings` with the STFT of the front end rewritten as plain
tensor algebra (a strided convolution whose kernels are the windowed DFT,
then the power spectrum, the mel matrix, the log and, for MFCC, the DCT of
SpeechBrain's own modules), so that the whole graph - features, sentence
normalization, ResCNN, L2 norm - exports with dynamic batch and time axes:
8 kHz audio ``[batch, samples]`` + relative lengths ``[batch]`` ->
embeddings ``[batch, emb_dim]``.  Padding is masked by the lengths exactly
as in torch (the same normalizer and ResCNN run in the graph).

:func:`write_onnx` writes ``embedding_model.onnx`` (fp32) and
``embedding_model.int8.onnx`` (onnxruntime static quantization, QDQ,
per-channel int8 weights of the ResCNN's convolutions and affine layer,
calibrated on training audio; the front end and the normalizer stay
float).  :func:`add_onnx` adds both files to an
existing export folder (``export_onnx.py`` on the command line).

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

import importlib.util
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from speechbrain.utils.logger import get_logger
from torch import Tensor, nn

from deep_speaker_sb.embedding import compute_embeddings
from deep_speaker_sb.errors import ConfigError
from deep_speaker_sb.features import Features
from deep_speaker_sb.sb_compat import amplitude_to_db, fbank_matrix
from deep_speaker_sb.utils import Pathlike

logger = get_logger(__name__)

ONNX_FILE = "embedding_model.onnx"
ONNX_INT8_FILE = "embedding_model.int8.onnx"
#: The ONNX opset of the exported graphs.
OPSET = 17
#: Input and output names of the graphs.
INPUT_NAMES = ("wavs", "wav_lens")
OUTPUT_NAME = "embeddings"
#: Graph nodes under this name prefix belong to the ResCNN (quantized).
_MODEL_PREFIX = "/model/"
#: Calibration utterances of the int8 copy, and their longest duration.
CALIBRATION_UTTERANCES = 32
CALIBRATION_SECONDS = 4.0


class OnnxFeatures(nn.Module):
    """:class:`~deep_speaker_sb.features.Features` without ``torch.stft``.

    The centred, zero-padded STFT becomes one strided ``conv1d`` whose
    kernels are the window times the cosine and sine of the DFT (over the
    window's non-zero taps only); the power spectrum, SpeechBrain's mel
    matrix, its dB conversion (with the per-sentence 80 dB floor) and the
    DCT (MFCC) follow.  Matches ``Features`` within float32 rounding.

    Arguments
    ---------
    features : Features
        The front end to reproduce (its STFT, filterbank and DCT).

    Example
    -------
    >>> feats = Features(n_mels=40)
    >>> x = torch.randn(2, 4000)
    >>> ref, out = feats(x), OnnxFeatures(feats)(x)
    >>> out.shape == ref.shape, bool((out - ref).abs().max() < 1e-2)
    (True, True)
    """

    def __init__(self, features: Features):
        super().__init__()
        compute = features.compute
        stft = compute.compute_STFT
        if not stft.center or stft.pad_mode != "constant":
            raise ConfigError("only a centred, zero-padded STFT exports")
        n_fft, win, hop = stft.n_fft, stft.win_length, stft.hop_length
        offset = (n_fft - win) // 2  # torch.stft centres a short window
        n = torch.arange(win, dtype=torch.float64) + offset
        k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)
        angle = 2 * math.pi * k[:, None] * n[None, :] / n_fft
        window = stft.window.to(torch.float64)[None, :]
        kernel = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window
        self.register_buffer("kernel", kernel[:, None, :].float())
        self.hop = hop
        self.n_bins = n_fft // 2 + 1
        self.pad_left = n_fft // 2 - offset
        self.pad_right = win - self.pad_left + 2 * (n_fft // 2) - n_fft
        self.filterbank = compute.compute_fbanks
        self.register_buffer("mel", fbank_matrix(self.filterbank).float())
        self.dct = getattr(compute, "compute_dct", None)

    def forward(self, wavs: Tensor) -> Tensor:
        """Features ``[batch, time, n_features]`` of ``wavs``."""
        x = nn.functional.pad(wavs[:, None, :], (self.pad_left, self.pad_right))
        spec = nn.functional.conv1d(x, self.kernel, stride=self.hop)
        real, imag = spec[:, : self.n_bins], spec[:, self.n_bins :]
        power = (real * real + imag * imag).transpose(1, 2)
        feats = amplitude_to_db(self.filterbank, torch.matmul(power, self.mel))
        if self.dct is not None:
            feats = self.dct(feats)
        return feats


class OnnxEmbedder(nn.Module):
    """Audio ``[B, T]`` + relative lengths ``[B]`` -> embeddings
    ``[B, emb_dim]``: :func:`~deep_speaker_sb.embedding.compute_embeddings`
    over :class:`OnnxFeatures`, the normalizer and the ResCNN.

    Arguments
    ---------
    compute_features : Features
        The model's front end.
    mean_var_norm : torch.nn.Module
        Its ``InputNormalization`` (``"sentence"`` or ``"global"``).
    embedding_model : torch.nn.Module
        The ResCNN.

    Example
    -------
    >>> from speechbrain.processing.features import InputNormalization
    >>> from deep_speaker_sb.lobes.rescnn import ResCNN
    >>> mods = dict(compute_features=Features(),
    ...             mean_var_norm=InputNormalization(norm_type="sentence"),
    ...             embedding_model=ResCNN(channels=(4, 8), emb_dim=8).eval())
    >>> x, lens = torch.randn(2, 8000), torch.tensor([1.0, 0.6])
    >>> out = OnnxEmbedder(**mods)(x, lens)
    >>> float((out * compute_embeddings(mods, x, lens)).sum(1).min()) > 0.999
    True
    """

    def __init__(
        self,
        compute_features: Features,
        mean_var_norm: nn.Module,
        embedding_model: nn.Module,
    ):
        super().__init__()
        if getattr(mean_var_norm, "norm_type", "sentence") == "batch":
            raise ConfigError(
                "batch normalization of the features depends on the other "
                "utterances of a batch and does not export; train with "
                "feature_norm sentence or global"
            )
        self.features = OnnxFeatures(compute_features)
        self.norm = mean_var_norm
        self.model = embedding_model

    def forward(self, wavs: Tensor, wav_lens: Tensor) -> Tensor:
        """L2-normalized embeddings of padded ``wavs``."""
        mods = {
            "compute_features": self.features,
            "mean_var_norm": self.norm,
            "embedding_model": self.model,
        }
        return compute_embeddings(mods, wavs, wav_lens)


def _require(module: str) -> Any:
    """Imports ``module`` or says which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(
            f"ONNX export needs {module}: pip install 'deep_speaker_sb[onnx]'"
        ) from None


def export_fp32(embedder: OnnxEmbedder, path: Pathlike) -> Path:
    """Exports ``embedder`` to ``path`` (atomic), dynamic batch and time.

    Arguments
    ---------
    embedder : OnnxEmbedder
        The model (put in eval mode).
    path : Pathlike
        The ``.onnx`` file to write.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    embedder = embedder.eval()
    example = (torch.randn(2, 16000) * 0.1, torch.tensor([1.0, 0.7]))
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        # the tracer's warnings are about shapes that the dynamic axes and
        # the parity tests (tests/test_onnx.py) cover
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                embedder,
                example,
                str(tmp),
                input_names=list(INPUT_NAMES),
                output_names=[OUTPUT_NAME],
                dynamic_axes={
                    INPUT_NAMES[0]: {0: "batch", 1: "samples"},
                    INPUT_NAMES[1]: {0: "batch"},
                    OUTPUT_NAME: {0: "batch"},
                },
                opset_version=OPSET,
                do_constant_folding=True,
                dynamo=False,
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


class _Calibration:
    """onnxruntime's ``CalibrationDataReader`` over waveforms."""

    def __init__(self, wavs: Sequence[Tensor]):
        self._items = iter(list(wavs))

    def get_next(self) -> dict[str, Any] | None:
        wav = next(self._items, None)
        if wav is None:
            return None
        x = wav.detach().float().reshape(1, -1).numpy()
        return {INPUT_NAMES[0]: x, INPUT_NAMES[1]: np.ones(1, np.float32)}


def quantize_int8(
    fp32_path: Pathlike, int8_path: Pathlike, calibration: Sequence[Tensor]
) -> Path:
    """Static int8 quantization of the ResCNN part of an fp32 graph.

    The graph is first optimized by onnxruntime (``quant_pre_process``,
    which folds its constant subgraphs), then quantized: QDQ
    format, per-channel symmetric int8 weights and uint8 activations for
    the convolutions and the affine layer (calibrated with MinMax on
    ``calibration``); the front end and the normalizer stay float.

    Arguments
    ---------
    fp32_path : Pathlike
        The graph written by :func:`export_fp32`.
    int8_path : Pathlike
        The file to write (atomic).
    calibration : sequence of torch.Tensor
        Mono waveforms ``[time]`` at the model's rate (training audio).

    Returns
    -------
    Path
        ``int8_path``.
    """
    onnx = _require("onnx")
    quant = _require("onnxruntime.quantization")
    if not calibration:
        raise ConfigError("int8 quantization needs calibration audio")
    int8_path = Path(int8_path)
    tmp = int8_path.with_name(f".{int8_path.name}.tmp")
    pre = int8_path.with_name(f".{int8_path.name}.pre.tmp")
    try:
        # onnxruntime's optimizations first (constant folding: 798 -> 422
        # nodes for the paper-width model), as onnxruntime advises: the
        # int8 graph quantized from it ran markedly faster than one
        # quantized from the raw export (bench/inference_throughput.py)
        quant.quant_pre_process(
            str(fp32_path), str(pre), skip_symbolic_shape=True
        )
        graph = onnx.load(str(pre)).graph
        exclude = [
            n.name for n in graph.node if not n.name.startswith(_MODEL_PREFIX)
        ]
        quant.quantize_static(
            str(pre),
            str(tmp),
            _Calibration(calibration),
            quant_format=quant.QuantFormat.QDQ,
            per_channel=True,
            activation_type=quant.QuantType.QUInt8,
            weight_type=quant.QuantType.QInt8,
            op_types_to_quantize=["Conv", "Gemm", "MatMul"],
            nodes_to_exclude=exclude,
        )
        os.replace(tmp, int8_path)
    finally:
        tmp.unlink(missing_ok=True)
        pre.unlink(missing_ok=True)
    return int8_path


def onnx_installed() -> bool:
    """Whether onnxruntime (the ONNX extra) is importable; warns if not."""
    if importlib.util.find_spec("onnxruntime") is None:
        logger.warning(
            "onnxruntime not installed: the export has no ONNX files "
            "(pip install 'deep_speaker_sb[onnx]', then export_onnx.py)"
        )
        return False
    return True


def onnx_versions() -> dict[str, Any]:
    """Opset and exporting versions, for ``config.json`` and the card."""
    versions = {"opset": OPSET, "torch": torch.__version__.split("+")[0]}
    for name in ("onnx", "onnxruntime"):
        try:
            versions[name] = _require(name).__version__
        except ConfigError:
            versions[name] = None
    return versions


def write_onnx(
    folder: Pathlike,
    compute_features: Features,
    mean_var_norm: nn.Module,
    embedding_model: nn.Module,
    calibration: Sequence[Tensor] | None,
) -> dict[str, Any]:
    """Writes ``embedding_model.onnx`` (and, with calibration audio,
    ``embedding_model.int8.onnx``) into ``folder``.

    Arguments
    ---------
    folder : Pathlike
        An (export) folder.
    compute_features, mean_var_norm, embedding_model : torch.nn.Module
        The model's three parts (copied; left in their mode).
    calibration : sequence of torch.Tensor, optional
        Training waveforms for the int8 copy (None: no int8 copy).

    Returns
    -------
    dict
        The ``onnx`` entry of ``config.json``: file names, opset and the
        exporting versions.
    """
    import copy

    folder = Path(folder)
    embedder = OnnxEmbedder(
        compute_features,
        copy.deepcopy(mean_var_norm).eval(),
        copy.deepcopy(embedding_model).eval(),
    )
    export_fp32(embedder, folder / ONNX_FILE)
    entry: dict[str, Any] = {"fp32": ONNX_FILE, **onnx_versions()}
    if calibration:
        quantize_int8(folder / ONNX_FILE, folder / ONNX_INT8_FILE, calibration)
        entry["int8"] = ONNX_INT8_FILE
        entry["int8_method"] = (
            f"static QDQ, per-channel, {len(calibration)} calibration "
            "utterances"
        )
    logger.info("wrote the ONNX graphs of %s", folder)
    return entry


def calibration_audio(
    csv: Pathlike,
    n: int = CALIBRATION_UTTERANCES,
    max_seconds: float = CALIBRATION_SECONDS,
) -> list[Tensor]:
    """Waveforms of ``n`` segments of a prepared manifest (evenly spaced
    rows, so that many speakers are covered), cut to ``max_seconds``.

    Raises
    ------
    MissingFileError
        When the manifest or a WAV it names does not exist
        (:func:`~deep_speaker_sb.dataio.read_manifest`).
    """
    import soundfile as sf

    from deep_speaker_sb.dataio import read_manifest

    rows = read_manifest(csv)  # its WAV paths resolved
    step = max(1, len(rows) // max(n, 1))
    wavs = []
    for row in rows[::step][:n]:
        path = row.wav
        sr = sf.info(str(path)).samplerate
        stop = min(row.stop, row.start + int(max_seconds * sr))
        data, _ = sf.read(
            str(path), start=row.start, stop=stop, dtype="float32"
        )
        wavs.append(torch.from_numpy(data.reshape(len(data), -1).mean(1)))
    return wavs


def add_onnx(
    folder: Pathlike,
    parts: Sequence[nn.Module],
    calibration_csv: Pathlike | None = None,
) -> dict[str, Any]:
    """Adds the ONNX files of a loaded model to its existing export folder
    (in place).

    The model is loaded by the caller
    (:func:`deep_speaker_sb.inference.load_parts`) and the files are
    recorded by it too (:func:`deep_speaker_sb.export.record_onnx`:
    ``config.json``'s ``onnx`` entry and the model card), so that this
    module imports neither ``export`` nor ``inference``; ``export_onnx.py``
    does all three.

    Arguments
    ---------
    folder : Pathlike
        The export folder the parts were loaded from.
    parts : sequence of torch.nn.Module
        Its features, normalizer and ResCNN.
    calibration_csv : Pathlike, optional
        A prepared manifest (the training ``train.csv``) whose audio
        calibrates the int8 copy; without it only the fp32 graph is
        written (and an older int8 copy removed).

    Returns
    -------
    dict
        The ``onnx`` entry of ``config.json`` (:func:`write_onnx`).
    """
    folder = Path(folder)
    calibration = (
        calibration_audio(calibration_csv) if calibration_csv else None
    )
    if not calibration:  # no stale int8 copy of an earlier model
        (folder / ONNX_INT8_FILE).unlink(missing_ok=True)
    return write_onnx(folder, *parts, calibration=calibration)
