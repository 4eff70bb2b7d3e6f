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
>>> model.threshold, model.operating_point.name  # no operating points
(0.5, 'threshold.json')

An export whose ``config.json`` holds a calibration
(:mod:`deep_speaker_sb.calibration`) also gives calibrated LLRs and
posteriors (:meth:`DeepSpeaker.llr`, :meth:`DeepSpeaker.verify_pair`) and
decides at its EER operating point, or at a target false-accept rate
(``from_hparams(..., far=0.01)``).
"""

from __future__ import annotations

import dataclasses
import math
import pickle
from collections.abc import Sequence
from pathlib import Path

import soundfile as sf
import torch
from ruamel.yaml import YAMLError
from speechbrain.dataio.preprocess import AudioNormalizer
from speechbrain.inference.interfaces import Pretrained
from speechbrain.processing.features import InputNormalization
from speechbrain.utils.data_utils import batch_pad_right
from speechbrain.utils.fetching import FetchConfig

from deep_speaker_sb import runtime
from deep_speaker_sb.calibration import (
    DEFAULT_PRIOR,
    Calibration,
    OperatingPoint,
    Verdict,
)
from deep_speaker_sb.embedding import (
    EMBEDDING_MODULES,
    SpeechEmbeddings,
    compute_embeddings,
)
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
    THRESHOLD_FILE,
    check_export_folder,
    onnx_file,
    read_config,
    read_score_calibration,
    read_threshold,
)
from deep_speaker_sb.register import (
    NO_SPEAKER,
    Candidate,
    SpeakerRegister,
    identify,
    model_identity,
)
from deep_speaker_sb.runtime import open_session, run_session
from deep_speaker_sb.sb_compat import load_norm_statistics
from deep_speaker_sb.scoring import cosine_similarity
from deep_speaker_sb.speech import NoSpeechError, SpeechCheck, check_speech
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
    that cannot be speech.

    Every file -> embedding path of :class:`DeepSpeaker` and
    :class:`PlainDeepSpeaker` reads its files here (each file once, the
    check on the samples that are embedded)."""
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
        require_speech: bool = True,
        crops: Crops | None = None,
    ) -> torch.Tensor:
        """Embeds many files, batched with padding and relative lengths.

        Files are sorted by duration so that each batch pads little; the
        result follows the order of ``paths``.  Like :meth:`encode_file`,
        a file that cannot be speech raises
        :class:`~deep_speaker_sb.speech.NoSpeechError` unless
        ``require_speech`` is False.

        Arguments
        ---------
        paths : sequence of Pathlike
            Audio files (any rate/channels).
        batch_size : int
            Most waveforms (files or crops) per batch.
        max_batch_seconds : float
            Most padded audio seconds per batch (bounds the memory).
        require_speech : bool
            Whether each file must pass the speech check.
        crops : Crops, optional
            Embed a file longer than ``crops.seconds`` as the
            L2-normalized mean of its ``crops.n`` crops (a shorter file's
            embedding is the same as without crops).

        Returns
        -------
        torch.Tensor
            ``[len(paths), emb_dim]`` on the CPU.
        """
        embs, _ = self._encode_files(
            paths, batch_size, max_batch_seconds, require_speech, False, crops
        )
        return embs

    def encode_speech_files(
        self,
        paths: Sequence[Pathlike],
        batch_size: int = 32,
        max_batch_seconds: float = 600.0,
        crops: Crops | None = None,
    ) -> SpeechEmbeddings:
        """Embeds the files that pass the speech check, each read once;
        the others are left out and reported (the evaluations of
        :mod:`deep_speaker_sb.evaluation` embed their files this way).

        Arguments
        ---------
        paths : sequence of Pathlike
            Audio files (any rate/channels).
        batch_size, max_batch_seconds, crops
            As in :meth:`encode_files`.

        Returns
        -------
        SpeechEmbeddings
            The embeddings of the files with speech (``[n, emb_dim]`` on
            the CPU, in the order of ``paths``) and, by index in
            ``paths``, why each other file holds no speech.
        """
        embs, no_speech = self._encode_files(
            paths, batch_size, max_batch_seconds, True, True, crops
        )
        return SpeechEmbeddings(embs, dict(sorted(no_speech.items())))

    def _encode_files(
        self,
        paths: Sequence[Pathlike],
        batch_size: int,
        max_batch_seconds: float,
        require_speech: bool,
        skip: bool,
        crops: Crops | None,
    ) -> tuple[torch.Tensor, dict[int, str]]:
        """:meth:`encode_files`; with ``skip``, a file without speech is
        left out and its index and reason returned instead of raising."""
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
        no_speech: dict[int, str] = {}
        batch: list[tuple[int, torch.Tensor]] = []

        def flush():
            wavs, lens = batch_pad_right([w for _, w in batch])
            embs = self.encode_batch(wavs, lens).cpu()
            for (i, _), e in zip(batch, embs, strict=True):
                sums[i] = e if sums[i] is None else sums[i] + e
                counts[i] += 1
            batch.clear()

        for i in order:
            try:
                wav = load_speech(
                    paths[i],
                    self.audio_normalizer,
                    self.speech_check,
                    require_speech,
                )
            except NoSpeechError as exc:
                if not skip:
                    raise
                no_speech[i] = str(exc)
                continue
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
        kept = [
            s if n == 1 else torch.nn.functional.normalize(s, dim=0)
            for s, n in zip(sums, counts, strict=True)
            if s is not None
        ]
        if not kept:
            return torch.empty(0, self.emb_dim), no_speech
        return torch.stack(kept), no_speech

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
    :attr:`threshold`: that of :attr:`operating_point`, the export's EER
    point or a target false-accept rate's (``far``), or for an export
    without operating points its ``threshold.json``;
    :meth:`similarity` is :func:`deep_speaker_sb.scoring.cosine_similarity`.
    With a calibrated export, :meth:`llr` maps cosines to log-likelihood
    ratios and :meth:`verify_pair` gives the whole verdict.

    Arguments
    ---------
    *args, **kwargs
        Forwarded to :class:`speechbrain.inference.interfaces.Pretrained`.
    export_folder : Pathlike, optional
        The export folder as the loader was given it (:attr:`folder`;
        default: the folder of the hyperparameters' ``threshold_file``).
    """

    MODULES_NEEDED = list(EMBEDDING_MODULES)
    HPARAMS_NEEDED = ["sample_rate", "audio_normalizer", "threshold_file"]

    def __init__(self, *args, export_folder: Pathlike | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        missing = [m for m in self.MODULES_NEEDED if m not in self.mods]
        if missing:
            raise DataError(
                f"the hyperparameters lack module(s) {missing}; re-export "
                "the model (deep_speaker_sb.export.export_pretrained)"
            )
        self.sample_rate = int(self.hparams.sample_rate)
        folder = Path(self.hparams.threshold_file).parent
        #: The export folder the model was loaded from, as the loader
        #: (:meth:`from_hparams`, :meth:`from_config`) was given it.
        self.folder = Path(folder if export_folder is None else export_folder)
        #: The calibration and operating points of the export.
        self.score_calibration = read_score_calibration(folder)
        self.stored_threshold = read_threshold(folder)
        self.use_operating_point(None)
        self.speech_check = read_speech_check(folder)
        self.register = None
        self._model_id: str | None = None
        self.backend = "torch"
        self.session = None

    def use_operating_point(self, far: float | None) -> OperatingPoint:
        """Decides at the operating point of false-accept rate ``far``
        from now on (None: the EER point, or ``threshold.json``); sets
        :attr:`threshold`.

        Raises
        ------
        ConfigError
            When the export has no point for ``far`` (the message lists
            those it has).
        """
        point = self.score_calibration.select(far, self.stored_threshold)
        #: The operating point that decides (its name and threshold).
        self.operating_point = point
        self.threshold = point.threshold
        return point

    @property
    def calibration(self) -> Calibration | None:
        """The export's cosine -> LLR calibration (None without one)."""
        return self.score_calibration.calibration

    def llr(self, score: float | torch.Tensor) -> float | torch.Tensor | None:
        """The calibrated log-likelihood ratio of cosine scores (None when
        the export has no calibration)."""
        if self.calibration is None:
            return None
        if torch.is_tensor(score):
            return self.calibration.a * score.double() + self.calibration.b
        return self.calibration.llr(float(score))

    def verify_pair(
        self,
        path_a: Pathlike,
        path_b: Pathlike,
        prior: float = DEFAULT_PRIOR,
    ) -> Verdict:
        """The verdict on two files: cosine, calibrated LLR, posterior of
        "same speaker" at ``prior`` and the threshold that decided.

        Both files must pass the speech check
        (:class:`~deep_speaker_sb.speech.NoSpeechError` otherwise).
        """
        emb_a = self.encode_file(path_a)
        emb_b = self.encode_file(path_b)
        score = float(self.similarity(emb_a, emb_b))
        return self.score_calibration.verdict(
            score, self.operating_point, prior
        )

    def use_backend(
        self,
        backend: str,
        threads: int | None = None,
        graph: Pathlike | None = None,
    ) -> None:
        """Embeds with ``backend`` from now on (see :data:`BACKENDS`).

        Arguments
        ---------
        backend : str
            ``"torch"``, ``"onnx"`` or ``"onnx-int8"``.
        threads : int, optional
            onnxruntime intra-op threads (ONNX backends).
        graph : Pathlike, optional
            An audio -> embedding ONNX file to run instead of the
            export's (e.g. another quantization of its graph, compared by
            ``bench/onnx_accuracy.py``); ONNX backends only.

        Raises
        ------
        ConfigError
            For an unknown backend, ONNX on a non-CPU device, or a
            ``graph`` with backend torch.
        MissingFileError
            When the export has no ONNX graph (with how to add it), or
            ``graph`` does not exist.
        """
        check_backend(backend)
        if graph is not None and backend == "torch":
            raise ConfigError("an ONNX graph needs an ONNX backend, not torch")
        self.session = None
        if backend != "torch":
            if str(self.device) != "cpu":
                raise ConfigError(
                    f"backend {backend} runs on the CPU; drop the device "
                    f"{self.device} (or use backend torch)"
                )
            if graph is not None:
                path = Path(graph)
                if not path.is_file():
                    raise MissingFileError(f"ONNX graph not found: {path}")
            else:
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
        far: float | None = None,
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
        far : float, optional
            Decide at the export's operating point of this false-accept
            rate (e.g. 0.01); by default its EER point (or, for an export
            without operating points, ``threshold.json``).
        **kwargs
            Forwarded (e.g. ``run_opts={"device": "cuda"}``).

        Returns
        -------
        DeepSpeaker
        """
        given = check_export_folder(source)
        folder = given.absolute()
        check_backend(backend)
        overrides = {"pretrained_path": str(folder), **(overrides or {})}
        kwargs.setdefault("fetch_config", FetchConfig(allow_network=False))
        try:
            model = super().from_hparams(
                source=str(folder),
                hparams_file=hparams_file,
                savedir=str(savedir if savedir is not None else folder),
                overrides=overrides,
                export_folder=given,
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
        model.use_operating_point(far)
        return model

    @classmethod
    def from_config(
        cls,
        source: Pathlike,
        backend: str = "torch",
        run_opts: dict | None = None,
        far: float | None = None,
    ) -> DeepSpeaker:
        """Loads an export folder without running its ``hyperparams.yaml``.

        The modules come from :func:`load_without_yaml` (``config.json``
        and ``torch.load(weights_only=True)``: no code from the folder
        runs); the result is the same :class:`DeepSpeaker` as
        :meth:`from_hparams` gives.  The command-line tools load exports
        this way.

        Arguments
        ---------
        source : Pathlike
            A local export folder with ``config.json``.
        backend : str
            As in :meth:`from_hparams`.
        run_opts : dict, optional
            SpeechBrain run options (e.g. ``{"device": "cpu"}``).
        far : float, optional
            As in :meth:`from_hparams`: decide at this false-accept
            rate's operating point.

        Returns
        -------
        DeepSpeaker

        Raises
        ------
        MissingFileError
            For an incomplete folder or one without ``config.json``.

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
        >>> _ = (folder / "hyperparams.yaml").write_text("not: [yaml")
        >>> model = DeepSpeaker.from_config(folder, run_opts={"device": "cpu"})
        >>> model.encode_batch(torch.rand(2, 8000)).shape, model.threshold
        (torch.Size([2, 16]), 0.5)
        """
        given = check_export_folder(source)
        folder = given.absolute()
        check_backend(backend)
        plain = load_without_yaml(folder)
        modules = dict(plain.mods.items())
        hparams = {
            "sample_rate": plain.sample_rate,
            "audio_normalizer": plain.audio_normalizer,
            "threshold_file": str(folder / THRESHOLD_FILE),
            **modules,
        }
        model = cls(
            modules=modules,
            hparams=hparams,
            run_opts=run_opts,
            export_folder=given,
        )
        model.use_backend(backend)
        model.use_operating_point(far)
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
        self, path_a: Pathlike, path_b: Pathlike, require_speech: bool = True
    ) -> tuple[float, bool]:
        """Cosine score of two files and the decision at :attr:`threshold`.

        Both files must pass the speech check unless ``require_speech`` is
        False (two silences are not "the same speaker").

        Returns
        -------
        (score, same_speaker) : tuple of (float, bool)

        Raises
        ------
        NoSpeechError
            When a file cannot be speech.
        """
        embs = self.encode_files(
            [path_a, path_b], batch_size=1, require_speech=require_speech
        )
        score = float(self.similarity(embs[0], embs[1]))
        return score, score > self.threshold

    # Speaker register: enrol once, identify later

    @property
    def register(self) -> SpeakerRegister | None:
        """The enrolled speakers of :meth:`enrol` / :meth:`identify`.

        Setting it also forgets which speakers :meth:`enrol` added since
        (what :meth:`add_to_register` would add to a file).
        """
        return self._register

    @register.setter
    def register(self, value: SpeakerRegister | None) -> None:
        self._register = value
        self._enrolled: SpeakerRegister | None = None

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

        Each file must pass the speech check (:meth:`encode_files`).  A new
        speaker is added; a known one's model becomes the running mean
        over its old and new files.  Save the register with
        :meth:`save_register`, or add the speakers enrolled since it was
        loaded to a register file with :meth:`add_to_register`.

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
        new = SpeakerRegister.from_audio(
            self, {name: paths}, batch_size, model_id=self.model_id
        )
        old = self._register or SpeakerRegister(
            [], new.embeddings[:0], model_id=self.model_id
        )
        self._register = old.update(new)
        self._enrolled = (
            new if self._enrolled is None else self._enrolled.update(new)
        )
        return self._register

    def identify(self, path: Pathlike, top: int = 3) -> list[Candidate]:
        """The ``top`` enrolled speakers of :attr:`register` closest to a
        recording: :func:`deep_speaker_sb.register.identify`.

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
        if self.register is None:
            raise ConfigError(NO_SPEAKER)
        return identify(self, path, self.register, top)

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
        saved = self.register.save(path)
        self._enrolled = None  # the file holds them
        return saved

    def add_to_register(self, path: Pathlike) -> SpeakerRegister:
        """Adds the speakers enrolled since :attr:`register` was loaded
        (or set, or saved) to the register file ``path`` (made if
        absent), under the file's lock
        (:meth:`SpeakerRegister.add_to_file`): enrolments into one file
        from several processes at the same time all land.

        :attr:`register` becomes what the file holds now.

        Returns
        -------
        SpeakerRegister
            The file's register.

        Raises
        ------
        ConfigError
            When nothing was enrolled since, or the file's register was
            made by another model.
        """
        if self._enrolled is None:
            raise ConfigError(
                "no speaker enrolled since the register was loaded or "
                "saved: call enrol() first"
            )
        saved = self._enrolled.add_to_file(path)
        self.register = saved
        return saved


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
    three modules of this package from ``config.json`` (plain JSON: the
    embedding model's class is looked up by its ``model_class`` name in
    :data:`deep_speaker_sb.lobes.EMBEDDING_MODELS`, ResCNN when absent) and
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
    from deep_speaker_sb.lobes import DEFAULT_MODEL_CLASS, model_class

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
        name = config.get("model_class", DEFAULT_MODEL_CLASS)
        model = model_class(name)(**config["model"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{path} is not a valid model config: {exc}") from exc
    for module, name in ((model, EMBEDDING_CKPT), (norm, NORM_CKPT)):
        ckpt = folder / name
        if not ckpt.is_file():
            raise MissingFileError(f"{ckpt} missing; {HOW_TO_EXPORT}")
        try:
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
            if module is norm:
                load_norm_statistics(norm, state)
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


#: What to do with an export older than ``config.json``, for messages.
NO_CONFIG_HINT = (
    "export it again (train_triplet.py ... --export_only True), or, if you "
    f"trust the folder, load it through its {HPARAMS_FILE} (--trust_yaml; "
    "trust_yaml=True in Python), which runs whatever objects it names"
)


def require_config(folder: Pathlike) -> None:
    """Raises :class:`MissingFileError` when ``folder`` has no
    ``config.json`` (an export older than it can only be loaded by
    running its ``hyperparams.yaml``).

    Example
    -------
    >>> import tempfile
    >>> require_config(tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.MissingFileError: .../config.json missing (...
    """
    if read_config(folder) is None:
        raise MissingFileError(
            f"{Path(folder) / CONFIG_FILE} missing (an export older than "
            f"config.json): {NO_CONFIG_HINT}"
        )


def load_parts(
    folder: Pathlike, trust_yaml: bool = False
) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    """The three parts of an export (features, normalizer, embedding
    model), e.g.
    for :func:`deep_speaker_sb.onnx_export.add_onnx`.

    Arguments
    ---------
    folder : Pathlike
        An export folder (``check_export_folder``).
    trust_yaml : bool
        Load the model through the folder's ``hyperparams.yaml`` (which
        runs whatever it names: only for folders you trust, e.g. exports
        older than ``config.json``); by default it is rebuilt from
        ``config.json`` (:func:`load_without_yaml`: no code of the folder
        runs, and a folder without ``config.json`` is refused).

    Returns
    -------
    (compute_features, mean_var_norm, embedding_model)
        On the CPU.
    """
    folder = check_export_folder(folder)
    if trust_yaml:
        mods = DeepSpeaker.from_hparams(
            source=folder, run_opts={"device": "cpu"}
        ).mods
    else:
        require_config(folder)
        mods = load_without_yaml(folder).mods
    return (
        mods["compute_features"],
        mods["mean_var_norm"],
        mods["embedding_model"],
    )
