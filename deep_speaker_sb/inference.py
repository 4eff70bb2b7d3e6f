"""``DeepSpeaker``: the pretrained speaker-embedding interface.

Loads an export folder (see :mod:`deep_speaker_sb.export`) offline with
``DeepSpeaker.from_hparams(source=folder)`` and embeds audio of any sample
rate and channel count: files are read with soundfile, mixed to mono and
resampled to the model's rate (8 kHz) by the folder's audio normalizer.

Example
-------
>>> import tempfile, pathlib, torch
>>> from speechbrain.processing.features import InputNormalization
>>> from deep_speaker_sb.export import export_pretrained
>>> from deep_speaker_sb.features import Features
>>> from deep_speaker_sb.lobes.rescnn import ResCNN
>>> folder = export_pretrained(
...     pathlib.Path(tempfile.mkdtemp()) / "pretrained",
...     compute_features=Features(),
...     mean_var_norm=InputNormalization(norm_type="sentence"),
...     embedding_model=ResCNN(channels=(4, 8), emb_dim=16,
...                            blocks_per_stage=1),
...     threshold=0.5, card={})
>>> model = DeepSpeaker.from_hparams(source=folder,
...                                  run_opts={"device": "cpu"})
>>> model.encode_batch(torch.rand(2, 16000)).shape
torch.Size([2, 16])
>>> model.threshold
0.5
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import soundfile as sf
import torch
from ruamel.yaml import YAMLError
from speechbrain.dataio.preprocess import AudioNormalizer
from speechbrain.inference.interfaces import Pretrained
from speechbrain.processing.features import InputNormalization
from speechbrain.utils.data_utils import batch_pad_right
from speechbrain.utils.fetching import FetchConfig

from deep_speaker_sb import runtime
from deep_speaker_sb.embedding import EMBEDDING_MODULES, compute_embeddings
from deep_speaker_sb.errors import (
    ConfigError,
    DataError,
    MissingFileError,
    UserError,
)
from deep_speaker_sb.export import (
    CONFIG_FILE,
    CONFIG_FORMAT,
    EMBEDDING_CKPT,
    HOW_TO_EXPORT,
    HPARAMS_FILE,
    NORM_CKPT,
    check_export_folder,
    onnx_file,
    read_config,
    read_threshold,
    record_onnx,
)
from deep_speaker_sb.onnx_export import (
    ONNX_INT8_FILE,
    calibration_audio,
    write_onnx,
)
from deep_speaker_sb.register import Candidate, SpeakerRegister, model_identity
from deep_speaker_sb.runtime import open_session, run_session
from deep_speaker_sb.scoring import cosine_similarity
from deep_speaker_sb.speech import SpeechCheck, check_speech
from deep_speaker_sb.utils import Pathlike


def read_audio(path: Pathlike) -> tuple[torch.Tensor, int]:
    """Reads an audio file with soundfile.

    Returns
    -------
    (signal, sample_rate)
        ``signal`` is float32 ``[time, channels]``.

    Raises
    ------
    MissingFileError
        When the file does not exist.
    DataError
        When it cannot be decoded or holds no samples.
    """
    data, sr = runtime.read_audio(path)
    return torch.from_numpy(data), sr


def load_mono(path: Pathlike, normalizer: AudioNormalizer) -> torch.Tensor:
    """Reads a file as mono ``[time]`` at ``normalizer``'s sample rate."""
    signal, sr = read_audio(path)
    if signal.shape[1] == 1:
        signal = signal[:, 0]
    return normalizer(signal, sr)


def load_speech(
    path: Pathlike,
    normalizer: AudioNormalizer,
    check: SpeechCheck,
    require_speech: bool = True,
) -> torch.Tensor:
    """:func:`load_mono`, then (unless ``require_speech`` is False) the
    speech check: :class:`~deep_speaker_sb.speech.NoSpeechError` for audio
    that cannot be speech."""
    wav = load_mono(path, normalizer)
    if require_speech:
        check_speech(wav, normalizer.sample_rate, check, str(path))
    return wav


#: Full scale of integer PCM, by dtype, for :func:`check_waveforms`.
_PCM_SCALE = {
    torch.int16: 32768.0,
    torch.int32: 2147483648.0,
    torch.int8: 128.0,
}


def check_waveforms(
    wavs: torch.Tensor | Sequence, wav_lens: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Checks and normalizes the input of :meth:`DeepSpeaker.encode_batch`.

    Float audio is taken as it is; integer PCM (int8, int16, int32, and
    uint8 centred on 128) is divided by its full scale; a numpy array is
    converted.  ``[time]`` becomes ``[1, time]`` and a mono channel axis
    ``[batch, 1, time]`` is dropped.

    Arguments
    ---------
    wavs : torch.Tensor or numpy.ndarray
        ``[batch, time]``, ``[time]`` or ``[batch, 1, time]`` audio.
    wav_lens : torch.Tensor, optional
        ``[batch]`` relative lengths in ``(0, 1]`` (default: all 1).

    Returns
    -------
    (wavs, wav_lens)
        float32 ``[batch, time]`` and ``[batch]``.

    Raises
    ------
    DataError
        For any other shape or type, empty audio, NaN or infinite samples,
        or lengths outside ``(0, 1]``.

    Example
    -------
    >>> wavs, lens = check_waveforms(torch.tensor([0, 16384, -32768],
    ...                                           dtype=torch.int16))
    >>> wavs.tolist(), lens.tolist()
    ([[0.0, 0.5, -1.0]], [1.0])
    >>> check_waveforms(torch.rand(2, 100), torch.tensor([1.0, 0.0]))
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.DataError: relative lengths must lie in (0, 1]...
    """
    if not torch.is_tensor(wavs):
        try:
            wavs = torch.as_tensor(wavs)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise DataError(f"audio must be a tensor or array: {exc}") from None
    if wavs.dtype == torch.uint8:
        wavs = (wavs.float() - 128.0) / 128.0
    elif wavs.dtype in _PCM_SCALE:
        wavs = wavs.float() / _PCM_SCALE[wavs.dtype]
    elif not wavs.is_floating_point():
        raise DataError(
            f"audio must be float (or integer PCM), got {wavs.dtype}"
        )
    if wavs.dim() == 1:
        wavs = wavs.unsqueeze(0)
    elif wavs.dim() == 3 and wavs.shape[1] == 1:
        wavs = wavs[:, 0]
    if wavs.dim() != 2:
        raise DataError(
            "audio must be mono [batch, time] (or [time], [batch, 1, time]), "
            f"got shape {tuple(wavs.shape)}"
        )
    if wavs.shape[0] == 0 or wavs.shape[1] == 0:
        raise DataError(f"audio is empty: shape {tuple(wavs.shape)}")
    if not torch.isfinite(wavs).all():
        raise DataError("audio holds NaN or infinite samples")
    if wav_lens is None:
        wav_lens = torch.ones(wavs.shape[0])
    wav_lens = torch.as_tensor(wav_lens, dtype=torch.float32).flatten()
    if wav_lens.shape[0] != wavs.shape[0]:
        raise DataError(
            f"{wav_lens.shape[0]} relative lengths for {wavs.shape[0]} "
            "waveforms"
        )
    if not bool(((wav_lens > 0) & (wav_lens <= 1)).all()):
        raise DataError(
            f"relative lengths must lie in (0, 1], got {wav_lens.tolist()}"
        )
    return wavs.float(), wav_lens


#: Backends of :meth:`DeepSpeaker.from_hparams`: torch, or the export's
#: ONNX graph (fp32 or int8) in onnxruntime on the CPU.
BACKENDS = ("torch", "onnx", "onnx-int8")


def check_backend(backend: str) -> str:
    """Returns ``backend`` if it is one of :data:`BACKENDS`.

    Example
    -------
    >>> check_backend("onnx-int8")
    'onnx-int8'
    >>> check_backend("tensorrt")
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.ConfigError: backend must be one of torch, ...
    """
    if backend not in BACKENDS:
        raise ConfigError(
            f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}"
        )
    return backend


@dataclasses.dataclass(frozen=True)
class Crops:
    """Test-time crops: a file longer than ``seconds`` is embedded as the
    L2-normalized mean of the embeddings of ``n`` evenly spaced crops of
    ``seconds`` each (the first at its start, the last at its end; one
    crop: the middle); a file of ``seconds`` or shorter is embedded whole.

    Arguments
    ---------
    n : int
        Crops per long file (at least 1).
    seconds : float
        Length of a crop (positive).

    Example
    -------
    >>> Crops(3, 2.0).starts(5 * 8000, 8000)  # 5 s at 8 kHz
    [0, 12000, 24000]
    >>> Crops(3, 2.0).starts(2 * 8000, 8000) is None  # not longer: whole
    True
    >>> Crops(0, 2.0)
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.ConfigError: --crops must be at least 1, got 0
    """

    n: int
    seconds: float

    def __post_init__(self) -> None:
        if int(self.n) != self.n or self.n < 1:
            raise ConfigError(f"--crops must be at least 1, got {self.n}")
        if not (math.isfinite(self.seconds) and self.seconds > 0):
            raise ConfigError(
                f"--crop_len must be a positive number of seconds, got "
                f"{self.seconds}"
            )

    def size(self, sample_rate: int) -> int:
        """Samples in a crop at ``sample_rate``."""
        return max(1, round(self.seconds * sample_rate))

    def starts(self, n_samples: int, sample_rate: int) -> list[int] | None:
        """First samples of the crops of ``n_samples`` samples of audio;
        None when the audio is not longer than a crop (embedded whole)."""
        size = self.size(sample_rate)
        if n_samples <= size:
            return None
        room = n_samples - size
        if self.n == 1:
            return [room // 2]
        return [round(k * room / (self.n - 1)) for k in range(self.n)]

    def split(self, wav: torch.Tensor, sample_rate: int) -> list[torch.Tensor]:
        """``wav`` ``[time]`` as its crops (or ``[wav]`` when short).

        Example
        -------
        >>> [len(c) for c in Crops(2, 1.0).split(torch.zeros(24000), 8000)]
        [8000, 8000]
        """
        starts = self.starts(len(wav), sample_rate)
        if starts is None:
            return [wav]
        size = self.size(sample_rate)
        return [wav[s : s + size] for s in starts]


def audio_duration(path: Pathlike) -> float:
    """Duration in seconds from the header (0.0 when unreadable)."""
    try:
        info = sf.info(str(path))
    except (RuntimeError, TypeError, ValueError):
        return 0.0
    return info.frames / max(info.samplerate, 1)


class FileEmbedding:
    """File embedding shared by :class:`DeepSpeaker` and
    :class:`PlainDeepSpeaker`: the speech check of a file and batched
    embedding of many files, optionally as the mean of crops (:class:`
    Crops`).  The class using it has ``sample_rate``, ``audio_normalizer``,
    ``speech_check``, ``emb_dim`` and ``encode_batch``.
    """

    sample_rate: int
    audio_normalizer: AudioNormalizer
    speech_check: SpeechCheck

    def encode_batch(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``[batch, emb_dim]`` embeddings (the class using this defines
        it)."""
        raise NotImplementedError

    @property
    def emb_dim(self) -> int:
        """The embedding dimension (the class using this defines it)."""
        raise NotImplementedError

    def check_speech(self, path: Pathlike) -> None:
        """Raises :class:`~deep_speaker_sb.speech.NoSpeechError` when the
        file cannot be speech (see :attr:`speech_check`)."""
        load_speech(path, self.audio_normalizer, self.speech_check)

    def encode_files(
        self,
        paths: Sequence[Pathlike],
        batch_size: int = 32,
        max_batch_seconds: float = 600.0,
        crops: Crops | None = None,
    ) -> torch.Tensor:
        """Embeds many files, batched with padding and relative lengths.

        Files are sorted by duration so that each batch pads little; the
        result follows the order of ``paths``.

        Arguments
        ---------
        paths : sequence of Pathlike
            Audio files (any rate/channels).
        batch_size : int
            Most waveforms (files or crops) per batch.
        max_batch_seconds : float
            Most padded audio seconds per batch (bounds the memory).
        crops : Crops, optional
            Embed a file longer than ``crops.seconds`` as the
            L2-normalized mean of its ``crops.n`` crops (a shorter file's
            embedding is the same as without crops).

        Returns
        -------
        torch.Tensor
            ``[len(paths), emb_dim]`` on the CPU.
        """
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        paths = [Path(p) for p in paths]
        longest_piece = math.inf if crops is None else crops.seconds
        order = sorted(
            range(len(paths)),
            key=lambda i: min(audio_duration(paths[i]), longest_piece),
        )
        sums: list[torch.Tensor | None] = [None] * len(paths)
        counts = [0] * len(paths)
        batch: list[tuple[int, torch.Tensor]] = []

        def flush():
            wavs, lens = batch_pad_right([w for _, w in batch])
            embs = self.encode_batch(wavs, lens).cpu()
            for (i, _), e in zip(batch, embs, strict=True):
                sums[i] = e if sums[i] is None else sums[i] + e
                counts[i] += 1
            batch.clear()

        for i in order:
            wav = self.load_audio(paths[i])
            pieces = (
                [wav] if crops is None else crops.split(wav, self.sample_rate)
            )
            for piece in pieces:
                longest = max([len(w) for _, w in batch] + [len(piece)])
                padded = longest * (len(batch) + 1) / self.sample_rate
                if batch and (
                    len(batch) >= batch_size or padded > max_batch_seconds
                ):
                    flush()
                batch.append((i, piece))
        if batch:
            flush()
        if not sums:
            return torch.empty(0, self.emb_dim)
        return torch.stack(
            [
                s if n == 1 else torch.nn.functional.normalize(s, dim=0)
                for s, n in zip(sums, counts, strict=True)
            ]
        )

    def load_audio(self, path: Pathlike, savedir=None) -> torch.Tensor:
        """Reads a file (soundfile) as mono ``[time]`` at the model's rate.

        Arguments
        ---------
        path : Pathlike
            Any file soundfile reads (WAV, FLAC, ...), any rate/channels.
        savedir : None
            Unused (kept for SpeechBrain's ``Pretrained`` signature).

        Returns
        -------
        torch.Tensor
            ``[time]`` float32 on the CPU.
        """
        del savedir
        return load_mono(path, self.audio_normalizer)


class DeepSpeaker(FileEmbedding, Pretrained):
    """Deep Speaker (ResCNN) speaker embeddings and cosine verification.

    Build it with :meth:`from_hparams` on an export folder.  Embeddings are
    L2-normalized ``[emb_dim]`` vectors; two utterances are judged to come
    from the same speaker when their cosine similarity exceeds
    :attr:`threshold` (from the folder's ``threshold.json``);
    :meth:`similarity` is :func:`deep_speaker_sb.scoring.cosine_similarity`.

    Arguments
    ---------
    *args, **kwargs
        Forwarded to :class:`speechbrain.inference.interfaces.Pretrained`.
    """

    MODULES_NEEDED = list(EMBEDDING_MODULES)
    HPARAMS_NEEDED = ["sample_rate", "audio_normalizer", "threshold_file"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        missing = [m for m in self.MODULES_NEEDED if m not in self.mods]
        if missing:
            raise DataError(
                f"the hyperparameters lack module(s) {missing}; re-export "
                "the model (deep_speaker_sb.export.export_pretrained)"
            )
        self.sample_rate = int(self.hparams.sample_rate)
        folder = Path(self.hparams.threshold_file).parent
        self.threshold = read_threshold(folder)
        self.speech_check = read_speech_check(folder)
        #: The enrolled speakers of :meth:`enrol` / :meth:`identify`.
        self.register: SpeakerRegister | None = None
        self._model_id: str | None = None
        self.backend = "torch"
        self.session = None

    def use_backend(self, backend: str, threads: int | None = None) -> None:
        """Embeds with ``backend`` from now on (see :data:`BACKENDS`).

        Raises
        ------
        ConfigError
            For an unknown backend, or ONNX on a non-CPU device.
        MissingFileError
            When the export has no ONNX graph (with how to add it).
        """
        check_backend(backend)
        self.session = None
        if backend != "torch":
            if str(self.device) != "cpu":
                raise ConfigError(
                    f"backend {backend} runs on the CPU; drop the device "
                    f"{self.device} (or use backend torch)"
                )
            folder = Path(self.hparams.threshold_file).parent
            path = onnx_file(folder, int8=backend == "onnx-int8")
            self.session = open_session(path, threads)
        self.backend = backend

    @classmethod
    def from_hparams(
        cls,
        source: Pathlike,
        hparams_file: str = HPARAMS_FILE,
        savedir: Pathlike | None = None,
        overrides: dict | None = None,
        backend: str = "torch",
        **kwargs,
    ) -> DeepSpeaker:
        """Loads an export folder, offline.

        Arguments
        ---------
        source : Pathlike
            A local export folder (checked to be complete first).
        hparams_file : str
            The hyperparameters file inside it.
        savedir : Pathlike, optional
            Where SpeechBrain links the files; by default the folder itself
            (nothing is copied).
        overrides : dict, optional
            HyperPyYAML overrides (``pretrained_path`` defaults to
            ``source`` so that a moved folder still loads).
        backend : str
            ``"torch"`` (default), ``"onnx"`` or ``"onnx-int8"``: the
            export's ``embedding_model.onnx`` / ``.int8.onnx`` run by
            onnxruntime on the CPU; same methods and outputs.
        **kwargs
            Forwarded (e.g. ``run_opts={"device": "cuda"}``).

        Returns
        -------
        DeepSpeaker
        """
        folder = check_export_folder(source).absolute()
        check_backend(backend)
        overrides = {"pretrained_path": str(folder), **(overrides or {})}
        kwargs.setdefault("fetch_config", FetchConfig(allow_network=False))
        try:
            model = super().from_hparams(
                source=str(folder),
                hparams_file=hparams_file,
                savedir=str(savedir if savedir is not None else folder),
                overrides=overrides,
                **kwargs,
            )
        except (
            YAMLError,
            pickle.UnpicklingError,
            EOFError,
            RuntimeError,
            TypeError,
            ValueError,
        ) as exc:
            if isinstance(exc, UserError):
                raise
            text = " ".join(str(exc).split()) or type(exc).__name__
            raise DataError(
                f"cannot load the model in {folder} (a broken "
                f"{hparams_file} or checkpoint): {text[:160]}; {HOW_TO_EXPORT}"
            ) from None
        model.use_backend(backend)
        return model

    def encode_batch(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Embeds waveforms at the model's sample rate.

        Arguments
        ---------
        wavs : torch.Tensor
            ``[batch, time]`` (or ``[time]``, ``[batch, 1, time]``) mono
            audio at :attr:`sample_rate`, padded at the end: float, or
            integer PCM divided by its full scale (:func:`check_waveforms`).
        wav_lens : torch.Tensor, optional
            ``[batch]`` relative lengths in ``(0, 1]``; padding does not
            change an embedding (up to the last feature frame).

        Returns
        -------
        torch.Tensor
            ``[batch, emb_dim]`` L2-normalized embeddings.

        Raises
        ------
        DataError
            For empty or non-finite audio, another shape or type, or
            lengths outside ``(0, 1]``.
        """
        wavs, wav_lens = check_waveforms(wavs, wav_lens)
        if self.session is not None:
            emb = run_session(self.session, wavs.numpy(), wav_lens.numpy())
            return torch.from_numpy(emb)
        wavs = wavs.to(self.device, torch.float32)
        wav_lens = wav_lens.to(self.device, torch.float32)
        with torch.no_grad():
            emb = compute_embeddings(self.mods, wavs, wav_lens)
        return emb.float()

    def forward(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Same as :meth:`encode_batch`."""
        return self.encode_batch(wavs, wav_lens)

    def encode_file(
        self, path: Pathlike, require_speech: bool = True
    ) -> torch.Tensor:
        """Embedding ``[emb_dim]`` of a whole audio file (any rate/channels).

        The result is on the CPU.  Unless ``require_speech`` is False, audio
        that cannot be speech (:attr:`speech_check`: silence, steady noise,
        tones, hum) raises :class:`~deep_speaker_sb.speech.NoSpeechError`
        instead of giving an embedding that would land near some speaker.
        """
        wav = load_speech(
            path, self.audio_normalizer, self.speech_check, require_speech
        )
        return self.encode_batch(wav)[0].cpu()

    @property
    def emb_dim(self) -> int:
        """The embedding dimension."""
        return int(self.hparams.embedding_model.config["emb_dim"])

    #: Cosine similarity over the last dimension (broadcasting).
    similarity = staticmethod(cosine_similarity)

    def verify_files(
        self, path_a: Pathlike, path_b: Pathlike
    ) -> tuple[float, bool]:
        """Cosine score of two files and the decision at :attr:`threshold`.

        Returns
        -------
        (score, same_speaker) : tuple of (float, bool)
        """
        embs = self.encode_files([path_a, path_b], batch_size=1)
        score = float(self.similarity(embs[0], embs[1]))
        return score, score > self.threshold

    # Speaker register: enrol once, identify later

    @property
    def model_id(self) -> str:
        """This model's identity (:func:`~deep_speaker_sb.register.
        model_identity`), kept in a register it makes."""
        if self._model_id is None:
            self._model_id = model_identity(self.mods)
        return self._model_id

    def enrol(
        self, name: str, paths: Sequence[Pathlike], batch_size: int = 32
    ) -> SpeakerRegister:
        """Enrols speaker ``name`` from audio files into :attr:`register`.

        Each file must pass the speech check (:meth:`check_speech`).  A new
        speaker is added; a known one's model becomes the running mean
        over its old and new files.  Save the register with
        :meth:`save_register`.

        Arguments
        ---------
        name : str
            The speaker id.
        paths : sequence of Pathlike
            Audio files of the speaker (any rate/channels).
        batch_size : int
            Files embedded per batch.

        Returns
        -------
        SpeakerRegister
            :attr:`register`, updated.

        Raises
        ------
        ConfigError
            For an empty name or no file.
        NoSpeechError
            When a file cannot be speech (nothing is enrolled).
        """
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(
                f"a speaker name must be a non-empty string, got {name!r}"
            )
        paths = list(paths)
        if not paths:
            raise ConfigError(f"no audio file given to enrol {name!r}")
        for path in paths:
            self.check_speech(path)
        new = SpeakerRegister.from_audio(
            self, {name: paths}, batch_size, model_id=self.model_id
        )
        old = self.register or SpeakerRegister(
            [], new.embeddings[:0], model_id=self.model_id
        )
        self.register = old.update(new)
        return self.register

    def identify(self, path: Pathlike, top: int = 3) -> list[Candidate]:
        """The ``top`` enrolled speakers closest to a recording.

        The recording is speaker ``candidates[0].speaker`` when
        ``candidates[0].accepted`` (its score is above :attr:`threshold`),
        unknown otherwise.

        Arguments
        ---------
        path : Pathlike
            The recording (it must pass the speech check).
        top : int
            Speakers returned.

        Returns
        -------
        list of Candidate
            Closest first.

        Raises
        ------
        ConfigError
            When no speaker is enrolled.
        NoSpeechError
            When the recording cannot be speech.
        """
        if self.register is None or not self.register.speakers:
            raise ConfigError(
                "no speaker enrolled: call enrol(name, paths) or "
                "load_register(path) first"
            )
        return self.register.rank(self.encode_file(path), self.threshold, top)

    def load_register(self, path: Pathlike) -> SpeakerRegister:
        """Loads a saved register as :attr:`register` (refusing one made
        by another model: :class:`~deep_speaker_sb.errors.ConfigError`)."""
        self.register = SpeakerRegister.load(path, model_id=self.model_id)
        return self.register

    def save_register(self, path: Pathlike) -> Path:
        """Writes :attr:`register` to ``path`` atomically (see
        :meth:`SpeakerRegister.save`)."""
        if self.register is None:
            raise ConfigError("no speaker enrolled: call enrol() first")
        return self.register.save(path)


class PlainDeepSpeaker(FileEmbedding, torch.nn.Module):
    """An export loaded without running its ``hyperparams.yaml``.

    Made by :func:`load_without_yaml`; embeds like
    :class:`DeepSpeaker` (the same :func:`check_waveforms` and
    :func:`~deep_speaker_sb.embedding.compute_embeddings`).

    Arguments
    ---------
    mods : torch.nn.ModuleDict
        ``compute_features``, ``mean_var_norm``, ``embedding_model``.
    sample_rate : int
        The model's sample rate.
    threshold : float
        The decision threshold on cosine similarity.
    speech_check : SpeechCheck, optional
        The thresholds of the speech check of :meth:`encode_file` and
        :meth:`check_speech` (default: :class:`SpeechCheck`'s).
    """

    def __init__(
        self,
        mods: torch.nn.ModuleDict,
        sample_rate: int,
        threshold: float,
        speech_check: SpeechCheck | None = None,
    ):
        super().__init__()
        self.mods = mods.eval()
        self.sample_rate = sample_rate
        self.threshold = threshold
        self.speech_check = speech_check or SpeechCheck()
        self.audio_normalizer = AudioNormalizer(sample_rate, "avg-to-mono")

    @property
    def emb_dim(self) -> int:
        """The embedding dimension."""
        return int(self.mods["embedding_model"].config["emb_dim"])

    def encode_batch(
        self, wavs: torch.Tensor, wav_lens: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Same as :meth:`DeepSpeaker.encode_batch` (on the CPU)."""
        wavs, wav_lens = check_waveforms(wavs, wav_lens)
        with torch.no_grad():
            return compute_embeddings(self.mods, wavs, wav_lens).float()

    def encode_file(
        self, path: Pathlike, require_speech: bool = True
    ) -> torch.Tensor:
        """Same as :meth:`DeepSpeaker.encode_file`."""
        wav = load_speech(
            path, self.audio_normalizer, self.speech_check, require_speech
        )
        return self.encode_batch(wav)[0]


def load_without_yaml(folder: Pathlike) -> PlainDeepSpeaker:
    """Loads an export folder executing none of its code.

    :meth:`DeepSpeaker.from_hparams` runs the folder's ``hyperparams.yaml``
    (HyperPyYAML builds whatever objects it names), so load exports that
    way only from sources you trust.  This loader instead rebuilds the
    three modules of this package from ``config.json`` (plain JSON) and
    reads the weights with ``torch.load(weights_only=True)`` (tensors only,
    no pickled code).

    Arguments
    ---------
    folder : Pathlike
        An export folder written by this version or later (it has
        ``config.json``).

    Returns
    -------
    PlainDeepSpeaker
        On the CPU, in eval mode.

    Raises
    ------
    MissingFileError
        When a file is missing (an export older than ``config.json``).
    DataError
        When ``config.json`` or a weights file is malformed.

    Example
    -------
    >>> import tempfile, pathlib
    >>> from deep_speaker_sb.export import export_pretrained
    >>> from deep_speaker_sb.features import Features
    >>> from deep_speaker_sb.lobes.rescnn import ResCNN
    >>> folder = export_pretrained(
    ...     pathlib.Path(tempfile.mkdtemp()) / "pretrained",
    ...     compute_features=Features(),
    ...     mean_var_norm=InputNormalization(norm_type="sentence"),
    ...     embedding_model=ResCNN(channels=(4, 8), emb_dim=16,
    ...                            blocks_per_stage=1).eval(),
    ...     threshold=0.5, card={})
    >>> plain = load_without_yaml(folder)
    >>> full = DeepSpeaker.from_hparams(source=folder,
    ...                                 run_opts={"device": "cpu"})
    >>> x = torch.rand(1, 8000)
    >>> bool(torch.allclose(plain.encode_batch(x), full.encode_batch(x),
    ...                     atol=1e-6))
    True
    """
    from deep_speaker_sb.features import Features
    from deep_speaker_sb.lobes.rescnn import ResCNN

    folder = Path(folder)
    path = folder / CONFIG_FILE
    config = read_config(folder)
    if config is None:
        raise MissingFileError(
            f"{path} missing: the export is older than config.json; "
            "export it again (train_triplet.py ... --export_only True)"
        )
    try:
        if config.get("format") != CONFIG_FORMAT:
            raise ValueError(f"unknown format {config.get('format')!r}")
        features = Features(**config["features"])
        norm = InputNormalization(**config["normalization"])
        model = ResCNN(**config["model"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is not a valid model config: {exc}") from exc
    for module, name in ((model, EMBEDDING_CKPT), (norm, NORM_CKPT)):
        ckpt = folder / name
        if not ckpt.is_file():
            raise MissingFileError(f"{ckpt} missing; {HOW_TO_EXPORT}")
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
            if module is norm:
                norm._load_statistics_dict(state)
            else:
                model.load_state_dict(state)
        except (
            RuntimeError,
            ValueError,
            KeyError,
            EOFError,
            pickle.UnpicklingError,
        ) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(f"cannot load {ckpt}: {msg}") from None
    mods = torch.nn.ModuleDict(
        {
            "compute_features": features,
            "mean_var_norm": norm,
            "embedding_model": model,
        }
    )
    return PlainDeepSpeaker(
        mods,
        int(features.config["sample_rate"]),
        read_threshold(folder),
        SpeechCheck.from_config(config.get("speech_check")),
    )


def read_speech_check(folder: Pathlike) -> SpeechCheck:
    """The speech check of an export: ``speech_check`` in its
    ``config.json``, the defaults of :class:`SpeechCheck` for what it does
    not set (or for an export without ``config.json``)."""
    config = read_config(folder) or {}
    try:
        return SpeechCheck.from_config(config.get("speech_check"))
    except (ValueError, TypeError, AttributeError) as exc:
        raise DataError(
            f"{Path(folder) / CONFIG_FILE}: bad speech_check: {exc}"
        ) from exc


def _load_parts(
    folder: Path,
) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    """The three parts of an export, loaded without its YAML when it has
    ``config.json``, otherwise through ``DeepSpeaker``."""
    if read_config(folder) is not None:
        mods = load_without_yaml(folder).mods
    else:
        mods = DeepSpeaker.from_hparams(
            source=folder, run_opts={"device": "cpu"}
        ).mods
    return (
        mods["compute_features"],
        mods["mean_var_norm"],
        mods["embedding_model"],
    )


def add_onnx(
    folder: Pathlike, calibration_csv: Pathlike | None = None
) -> dict[str, Any]:
    """Adds the ONNX files to an existing export folder (in place).

    Arguments
    ---------
    folder : Pathlike
        An export folder (``check_export_folder``).
    calibration_csv : Pathlike, optional
        A prepared manifest (the training ``train.csv``) whose audio
        calibrates the int8 copy; without it only the fp32 graph is
        written (and an older int8 copy removed).

    Returns
    -------
    dict
        The ``onnx`` entry, also merged into ``config.json`` (written when
        the folder has none, so that the torch-free runtime can read it).
    """
    folder = check_export_folder(folder)
    calibration = (
        calibration_audio(calibration_csv) if calibration_csv else None
    )
    parts = _load_parts(folder)
    if not calibration:  # no stale int8 copy of an earlier model
        (folder / ONNX_INT8_FILE).unlink(missing_ok=True)
    entry = write_onnx(folder, *parts, calibration=calibration)
    record_onnx(folder, entry, parts)
    return entry
