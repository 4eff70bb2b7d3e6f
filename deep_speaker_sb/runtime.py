"""Torch-free speaker embeddings: an export's ONNX graph in onnxruntime.

Needs only ``numpy``, ``soundfile``, ``scipy`` (resampling) and
``onnxruntime`` (``pip install 'deep_speaker_sb[onnx]'``), not torch or
SpeechBrain, so that a service can embed speech without the training
stack::

    from deep_speaker_sb import runtime
    model = runtime.OnnxSpeaker("results/triplet/1986/pretrained")
    embs = model.encode_files(["a.wav", "b.wav"])  # [2, emb_dim], unit norm
    score = runtime.similarity(embs[0], embs[1])   # cosine similarity
    same = score > model.threshold
    verdict = model.verify_pair("a.wav", "b.wav")  # + LLR, posterior

A calibrated export (``calibration`` and ``operating_points`` in its
``config.json``, :mod:`deep_speaker_sb.calibration`) gives LLRs
(:meth:`OnnxSpeaker.llr`) and decides at its EER point or, with
``OnnxSpeaker(folder, far=0.01)``, at a target false-accept rate's.

Files of any rate and channel count are mixed to mono and resampled to
the model's rate with the data preparation's resampler
(:func:`deep_speaker_sb.dsp.resample`; ``DeepSpeaker`` resamples with
torchaudio, so for files not at 8 kHz the two differ by resampling
rounding).  Every file goes through the speech check of
``DeepSpeaker.encode_file`` (:func:`deep_speaker_sb.speech.check_speech`,
numpy only, with the export's ``speech_check`` thresholds): silence,
steady noise, tones and hum raise
:class:`~deep_speaker_sb.speech.NoSpeechError` instead of landing near
some speaker (``require_speech=False`` skips it).

The names are ``DeepSpeaker``'s: ``encode_files`` and ``similarity``
(issue #20); ``embed`` and ``score`` (the method and the module's
functions) are their deprecated names, which warn
(``DeprecationWarning``) and go in the next release.

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from deep_speaker_sb.calibration import (
    DEFAULT_PRIOR,
    Calibration,
    ScoreCalibration,
    Verdict,
)
from deep_speaker_sb.errors import ConfigError, DataError, MissingFileError
from deep_speaker_sb.renames import renamed_alias
from deep_speaker_sb.speech import SpeechCheck, check_speech
from deep_speaker_sb.utils import Pathlike

# SpeechBrain's get_logger would import torch: the standard library's here
logger = logging.getLogger(__name__)

#: Files of an export folder the runtime reads (the names of
#: ``deep_speaker_sb.export`` / ``onnx_export``, which import torch).
CONFIG_FILE = "config.json"
THRESHOLD_FILE = "threshold.json"
#: ``config.json``'s ``onnx`` keys of the two graphs.
PRECISIONS = ("fp32", "int8")


def open_session(path: Pathlike, threads: int | None = None) -> Any:
    """An onnxruntime CPU session on ``path``.

    Arguments
    ---------
    path : Pathlike
        An ``.onnx`` file.
    threads : int, optional
        Intra-op threads (default: onnxruntime's, one per core).

    Raises
    ------
    ConfigError
        When onnxruntime is not installed.
    DataError
        When the file is not a valid graph.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise ConfigError(
            "the ONNX backend needs onnxruntime: "
            "pip install 'deep_speaker_sb[onnx]'"
        ) from None
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises its own exception types
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot load the ONNX graph {path}: {msg}") from None


def run_session(
    session: Any, wavs: np.ndarray, wav_lens: np.ndarray
) -> np.ndarray:
    """Embeddings ``[batch, emb_dim]`` of padded ``wavs`` ``[batch, time]``
    (float32 at the model's rate) with relative lengths ``[batch]``."""
    feeds = {
        "wavs": np.ascontiguousarray(wavs, dtype=np.float32),
        "wav_lens": np.ascontiguousarray(wav_lens, dtype=np.float32),
    }
    return session.run(None, feeds)[0]


def pad_batch(waves: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Right-pads mono waveforms with zeros; relative lengths.

    Example
    -------
    >>> wavs, lens = pad_batch([np.ones(4), np.ones(2)])
    >>> wavs.tolist(), lens.tolist()
    ([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]], [1.0, 0.5])
    """
    longest = max(len(w) for w in waves)
    out = np.zeros((len(waves), longest), dtype=np.float32)
    for i, w in enumerate(waves):
        out[i, : len(w)] = w
    lens = np.array([len(w) / longest for w in waves], dtype=np.float32)
    return out, lens


def read_audio(path: Pathlike) -> tuple[np.ndarray, int]:
    """Reads an audio file with soundfile: float32 ``[time, channels]``
    and its sample rate.

    Raises
    ------
    MissingFileError
        When the file does not exist.
    DataError
        When it cannot be decoded, holds no samples, or NaN / inf.
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"audio file not found: {path}")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, TypeError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"cannot read audio file {path}: {msg}") from None
    if data.shape[0] == 0:
        raise DataError(f"audio file {path} holds no samples")
    if not np.isfinite(data).all():
        raise DataError(f"audio file {path} holds NaN or infinite samples")
    return data, int(sr)


def read_mono(path: Pathlike, sample_rate: int) -> np.ndarray:
    """A file (:func:`read_audio`) as float32 mono ``[time]`` at
    ``sample_rate``."""
    data, sr = read_audio(path)
    mono = data.mean(axis=1)
    if sr == sample_rate:
        return mono
    from deep_speaker_sb.dsp import resample  # scipy: only when needed

    return resample(mono, sr, sample_rate)


def read_json_object(path: Pathlike, how: str) -> dict[str, Any]:
    """A JSON file holding an object (an export's ``config.json``, ...).

    Raises
    ------
    MissingFileError
        When the file is missing (``how`` says how to make it).
    DataError
        When it is not valid JSON or not an object.

    Example
    -------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "config.json"
    >>> _ = path.write_text('{"format": 1}')
    >>> read_json_object(path, "export it")
    {'format': 1}
    >>> _ = path.write_text('[1]')
    >>> read_json_object(path, "export it")
    Traceback (most recent call last):
    deep_speaker_sb.errors.DataError: ... is not a JSON object
    """
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path} missing; {how}")
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise DataError(f"{path} is not a JSON object")
    return value


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray | float:
    """Cosine similarity of embeddings over the last axis (broadcasting).

    Example
    -------
    >>> round(similarity(np.array([1.0, 0.0]), np.array([1.0, 1.0])), 4)
    0.7071
    >>> similarity(np.eye(2), np.array([0.0, 2.0])).tolist()
    [0.0, 1.0]
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    dot = (a * b).sum(-1)
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    value = dot / np.maximum(norms, 1e-12)
    return float(value) if np.ndim(value) == 0 else value


class OnnxSpeaker:
    """An export folder's ONNX graph, with files in and embeddings out.

    Arguments
    ---------
    folder : Pathlike
        An export folder with ``embedding_model.onnx`` (see
        :mod:`deep_speaker_sb.onnx_export`).
    precision : str
        ``"fp32"`` or ``"int8"`` (``embedding_model.int8.onnx``).
    threads : int, optional
        onnxruntime intra-op threads.
    far : float, optional
        Decide at the export's operating point of this false-accept rate;
        by default its EER point (or ``threshold.json``'s threshold).

    Raises
    ------
    MissingFileError
        When the folder, its ``config.json`` or the graph is missing (with
        how to add the ONNX files).
    ConfigError
        When the export has no operating point for ``far``.
    """

    def __init__(
        self,
        folder: Pathlike,
        precision: str = "fp32",
        threads: int | None = None,
        far: float | None = None,
    ):
        if precision not in PRECISIONS:
            raise ConfigError(
                f"precision must be one of {PRECISIONS}, got {precision!r}"
            )
        self.folder = Path(folder)
        how = (
            "add the ONNX files with `python export_onnx.py "
            f"{self.folder} --calibration_csv <prep>/train.csv`"
        )
        if not self.folder.is_dir():
            raise MissingFileError(f"model folder not found: {self.folder}")
        config = read_json_object(self.folder / CONFIG_FILE, how)
        entry = config.get("onnx") or {}
        if not entry.get(precision):
            raise MissingFileError(
                f"{self.folder} has no {precision} ONNX graph; {how}"
            )
        graph = self.folder / str(entry[precision])
        if not graph.is_file():
            raise MissingFileError(f"{graph} missing; {how}")
        try:
            self.sample_rate = int(config["features"]["sample_rate"])
            self.emb_dim = int(config["model"]["emb_dim"])
            threshold = read_json_object(
                self.folder / THRESHOLD_FILE, "re-export the model"
            )
            stored = float(threshold["threshold"])
            #: The calibration and operating points of the export.
            self.score_calibration = ScoreCalibration.from_config(config)
            #: The thresholds of the speech check (the export's).
            self.speech_check = SpeechCheck.from_config(
                config.get("speech_check")
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{self.folder}: bad model config: {exc}") from None
        #: The operating point that decides, and its threshold.
        self.operating_point = self.score_calibration.select(far, stored)
        self.threshold = self.operating_point.threshold
        self.precision = precision
        self.session = open_session(graph, threads)

    def embed_waveforms(
        self, wavs: np.ndarray, wav_lens: np.ndarray | None = None
    ) -> np.ndarray:
        """Embeddings ``[batch, emb_dim]`` of ``wavs`` ``[batch, time]``
        (float, at :attr:`sample_rate`, padded at the end) with relative
        lengths ``wav_lens`` (default: all 1)."""
        wavs = np.asarray(wavs, dtype=np.float32)
        if wavs.ndim == 1:
            wavs = wavs[None]
        if wavs.ndim != 2 or wavs.size == 0:
            raise DataError(f"audio must be [batch, time], got {wavs.shape}")
        if wav_lens is None:
            wav_lens = np.ones(len(wavs), dtype=np.float32)
        return run_session(self.session, wavs, wav_lens)

    def load_speech(
        self, path: Pathlike, require_speech: bool = True
    ) -> np.ndarray:
        """A file as float32 mono ``[time]`` at :attr:`sample_rate`, then
        (unless ``require_speech`` is False) the speech check.

        Raises
        ------
        NoSpeechError
            When the file cannot be speech (:attr:`speech_check`).
        """
        wav = read_mono(path, self.sample_rate)
        if require_speech:
            check_speech(wav, self.sample_rate, self.speech_check, str(path))
        return wav

    def check_speech(self, path: Pathlike) -> None:
        """Raises :class:`~deep_speaker_sb.speech.NoSpeechError` when the
        file cannot be speech."""
        self.load_speech(path)

    def encode_files(
        self,
        paths: Sequence[Pathlike],
        batch_size: int = 16,
        require_speech: bool = True,
    ) -> np.ndarray:
        """Embeddings ``[len(paths), emb_dim]`` of audio files.

        Files are sorted by length and embedded ``batch_size`` at a time
        (padding never changes an embedding); rows follow ``paths``.  Each
        file must pass the speech check (:meth:`load_speech`) unless
        ``require_speech`` is False; all are read and checked before any
        is embedded.
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        waves = [self.load_speech(p, require_speech) for p in paths]
        out = np.zeros((len(waves), self.emb_dim), dtype=np.float32)
        order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            out[idx] = self.embed_waveforms(*pad_batch([waves[i] for i in idx]))
        return out

    embed = renamed_alias(encode_files, "embed")
    #: Cosine similarity over the last axis (broadcasting), as
    #: ``DeepSpeaker.similarity``.
    similarity = staticmethod(similarity)

    def verify(
        self, path_a: Pathlike, path_b: Pathlike, require_speech: bool = True
    ) -> tuple[float, bool]:
        """Cosine score of two files and the decision at :attr:`threshold`
        (a file that cannot be speech raises
        :class:`~deep_speaker_sb.speech.NoSpeechError` unless
        ``require_speech`` is False)."""
        a, b = self.encode_files([path_a, path_b], 1, require_speech)
        value = float(similarity(a, b))
        return value, value > self.threshold

    @property
    def calibration(self) -> Calibration | None:
        """The export's cosine -> LLR calibration (None without one)."""
        return self.score_calibration.calibration

    def llr(self, scores: np.ndarray | float) -> np.ndarray | float | None:
        """Calibrated LLRs of cosine scores (None without calibration)."""
        return self.score_calibration.llr(scores)

    def verify_pair(
        self,
        path_a: Pathlike,
        path_b: Pathlike,
        prior: float = DEFAULT_PRIOR,
    ) -> Verdict:
        """The verdict on two files: cosine, LLR, posterior at ``prior``
        and the operating point that decided (both files speech-checked)."""
        a, b = self.encode_files([path_a, path_b], batch_size=1)
        return self.score_calibration.verdict(
            float(similarity(a, b)), self.operating_point, prior
        )


def encode_files(
    paths: Sequence[Pathlike],
    model: Pathlike | OnnxSpeaker,
    precision: str = "fp32",
    require_speech: bool = True,
) -> np.ndarray:
    """Embeddings ``[len(paths), emb_dim]`` of audio files with ``model``
    (an :class:`OnnxSpeaker` or an export folder to load), each file
    speech-checked unless ``require_speech`` is False."""
    if not isinstance(model, OnnxSpeaker):
        model = OnnxSpeaker(model, precision)
    return model.encode_files(paths, require_speech=require_speech)


embed = renamed_alias(encode_files, "embed")
score = renamed_alias(similarity, "score")
