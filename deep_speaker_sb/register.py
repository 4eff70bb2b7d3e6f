"""Speaker identification: enrolled speakers, their models, ranked answers.

Speakers are enrolled from a folder laid out as ``<SPK>/<file>.wav`` or
from a prepared manifest (:func:`enrolment_speakers`).  A speaker's model
is the mean of its files' embeddings, re-normalized
(:meth:`SpeakerRegister.from_audio`); a recording is identified by ranking
the speakers by the cosine similarity of their models to its embedding
(:meth:`SpeakerRegister.rank`, :func:`identify`), a speaker being accepted
only above the model's decision threshold.

A register can be saved to one file (:meth:`SpeakerRegister.save`: each
speaker's mean embedding, its file count and the identity of the model
that made it, :func:`model_identity`) and loaded back
(:meth:`SpeakerRegister.load`, tensors and strings only, no pickled code),
refusing a register made by another model; enrolling more files updates
it (:meth:`SpeakerRegister.update`: a running mean with counts).
:meth:`SpeakerRegister.add_to_file` does the load -> update -> save of a
saved register under its lock (:func:`register_lock`), so that enrolments
run at the same time into one register all land.

Example
-------
>>> register = SpeakerRegister(["A", "B"], torch.eye(2))
>>> register.rank(torch.tensor([0.6, 0.8]), threshold=0.7)
... # doctest: +NORMALIZE_WHITESPACE
[Candidate(speaker='B', score=0.800000011920929, accepted=True),
 Candidate(speaker='A', score=0.6000000238418579, accepted=False)]
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import pickle
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import torch
from speechbrain.utils.logger import get_logger

from deep_speaker_sb.checkpoints import unwrap
from deep_speaker_sb.dataio import (
    read_manifest,
    speaker_utterances,
    utterances,
)
from deep_speaker_sb.embedding import Embedder
from deep_speaker_sb.errors import (
    ConfigError,
    DataError,
    MissingFileError,
    OutputError,
)
from deep_speaker_sb.sb_compat import norm_statistics
from deep_speaker_sb.scoring import cosine_similarity
from deep_speaker_sb.utils import Pathlike, atomic_write

logger = get_logger(__name__)

#: Audio files an enrolment folder may hold.
AUDIO_SUFFIXES = (".wav", ".flac")
#: Version of the saved register file (:meth:`SpeakerRegister.save`).
REGISTER_FORMAT = 1


def model_identity(mods: Mapping[str, torch.nn.Module]) -> str:
    """The identity of a model: a SHA-256 over the embedding model's
    weights and buffers and the normalizer's statistics (names, shapes,
    values), with the embedding dimension in front.

    Two loads of one export (moved, re-exported, on any device) give the
    same identity; any other weights give another.

    Arguments
    ---------
    mods : mapping
        ``embedding_model`` and ``mean_var_norm`` (e.g.
        ``DeepSpeaker.mods``).

    Returns
    -------
    str
        ``"<emb_dim>-<sha256 hex>"``.

    Example
    -------
    >>> from speechbrain.processing.features import InputNormalization
    >>> from deep_speaker_sb.lobes.rescnn import ResCNN
    >>> def mods(seed):
    ...     _ = torch.manual_seed(seed)
    ...     return {"embedding_model": ResCNN(channels=(4,), emb_dim=8),
    ...             "mean_var_norm": InputNormalization(norm_type="sentence")}
    >>> model_identity(mods(0)) == model_identity(mods(0))
    True
    >>> model_identity(mods(0)) == model_identity(mods(1))
    False
    >>> model_identity(mods(0))[:2]
    '8-'
    """
    model = unwrap(mods["embedding_model"])
    norm = unwrap(mods["mean_var_norm"])
    digest = hashlib.sha256()
    parts = {
        **{f"model.{k}": v for k, v in model.state_dict().items()},
        **{f"norm.{k}": v for k, v in norm_statistics(norm).items()},
    }
    for name in sorted(parts):
        value = parts[name]
        digest.update(name.encode())
        if torch.is_tensor(value):
            value = value.detach().cpu().contiguous()
            digest.update(f"{value.dtype}{tuple(value.shape)}".encode())
            digest.update(value.view(-1).view(torch.uint8).numpy().tobytes())
        else:
            digest.update(repr(value).encode())
    return f"{model.config['emb_dim']}-{digest.hexdigest()}"


def lock_path(path: Pathlike) -> Path:
    """The lock file of a register: ``<register>.lock`` beside it.

    Example
    -------
    >>> lock_path("/data/speakers.pt").name
    'speakers.pt.lock'
    """
    path = Path(path)
    return path.with_name(path.name + ".lock")


@contextlib.contextmanager
def register_lock(path: Pathlike) -> Iterator[Path]:
    """Holds the lock of the register file ``path`` (an exclusive
    ``flock`` on :func:`lock_path`), waiting while another process holds
    it.

    Every read-update-write of a saved register holds it
    (:meth:`SpeakerRegister.add_to_file`), so that two enrolments at the
    same time both land.  The lock file is removed on release; a process
    that locked a lock file removed meanwhile locks the new one instead.

    Arguments
    ---------
    path : Pathlike
        The register file (it need not exist yet).

    Yields
    ------
    Path
        The lock file.

    Raises
    ------
    OutputError
        When the lock file cannot be made (no permission, ...).

    Example
    -------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with register_lock(d / "speakers.pt") as lock:
    ...     lock.name, lock.exists()
    ('speakers.pt.lock', True)
    >>> lock.exists()
    False
    """
    lock = lock_path(path)
    while True:
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise OutputError(
                f"cannot lock register {path}: cannot create {lock}: "
                f"{exc.strerror or exc}"
            ) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                logger.info("waiting for another process writing %s", path)
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as exc:  # a file system without locks
                raise OutputError(
                    f"cannot lock register {path} ({lock}): "
                    f"{exc.strerror or exc}"
                ) from None
            # The holder before us may have removed the file we opened.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(lock))
            except FileNotFoundError:
                same = False
            if not same:
                continue  # lock the file now at that name
            try:
                yield lock
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(lock)
            return
        finally:
            os.close(fd)  # releases the lock


def enrolment_folder(folder: Pathlike) -> dict[str, list[Path]]:
    """Speaker id -> audio files of a folder laid out as ``<SPK>/<f>.wav``.

    Raises
    ------
    DataError
        When no speaker folder holds audio.

    Example
    -------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> (d / "S1").mkdir()
    >>> _ = (d / "S1" / "x.wav").write_bytes(b"")
    >>> {k: [p.name for p in v] for k, v in enrolment_folder(d).items()}
    {'S1': ['x.wav']}
    """
    folder = Path(folder)
    spk2wavs = {
        spk.name: sorted(
            p for p in spk.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES
        )
        for spk in sorted(folder.iterdir())
        if spk.is_dir()
    }
    spk2wavs = {k: v for k, v in spk2wavs.items() if v}
    if not spk2wavs:
        raise DataError(
            f"no enrolment audio in {folder}: expected <SPK>/<file>.wav"
        )
    return spk2wavs


def enrolment_speakers(
    enrol: Pathlike, exclude: Pathlike | None = None
) -> dict[str, list[Path]]:
    """Speaker id -> enrolment files, from a folder or a manifest.

    Arguments
    ---------
    enrol : Pathlike
        A folder of ``<SPK>/<file>.wav`` (:func:`enrolment_folder`) or a
        prepared manifest CSV (``{data_root}`` is its folder).
    exclude : Pathlike, optional
        A file left out (the recording to identify); a speaker left with
        no file is dropped.

    Returns
    -------
    dict
        Speaker id -> audio files.

    Raises
    ------
    MissingFileError
        When ``enrol`` (or audio a manifest names) does not exist.
    DataError
        When no enrolment audio is left.

    Example
    -------
    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> for name in ("S1/a.wav", "S1/b.wav", "S2/c.wav"):
    ...     (d / name).parent.mkdir(exist_ok=True)
    ...     _ = (d / name).write_bytes(b"")
    >>> spk2wavs = enrolment_speakers(d, exclude=d / "S2" / "c.wav")
    >>> {k: [p.name for p in v] for k, v in spk2wavs.items()}
    {'S1': ['a.wav', 'b.wav']}
    """
    enrol = Path(enrol)
    if enrol.is_dir():
        spk2wavs = enrolment_folder(enrol)
    elif enrol.is_file():
        spk2utts = speaker_utterances(utterances(read_manifest(enrol)))
        spk2wavs = {
            spk: [Path(u.wav) for u in utts] for spk, utts in spk2utts.items()
        }
    else:
        raise MissingFileError(f"enrolment CSV or folder not found: {enrol}")
    if exclude is None:
        return spk2wavs
    query = Path(exclude).resolve()
    spk2wavs = {
        spk: kept
        for spk, wavs in spk2wavs.items()
        if (kept := [w for w in wavs if w.resolve() != query])
    }
    if not spk2wavs:
        raise DataError(f"no enrolment audio in {enrol} besides {exclude}")
    return spk2wavs


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One ranked answer of an identification.

    Attributes
    ----------
    speaker : str
        The enrolled speaker.
    score : float
        Cosine similarity of the speaker's model to the recording.
    accepted : bool
        Whether ``score`` is above the decision threshold.
    """

    speaker: str
    score: float
    accepted: bool


@dataclasses.dataclass
class SpeakerRegister:
    """Enrolled speakers and their models (mean embeddings).

    Arguments
    ---------
    speakers : list of str
        Speaker ids.
    embeddings : torch.Tensor
        ``[len(speakers), emb_dim]`` speaker models, in the same order: the
        mean of each speaker's file embeddings (cosine scoring ignores
        their norm).
    counts : list of int, optional
        Files averaged into each model (default: 1 each); they weigh the
        running mean of :meth:`update`.
    model_id : str, optional
        The :func:`model_identity` of the model that made the embeddings;
        :meth:`load` and :meth:`update` refuse another model's.
    """

    speakers: list[str]
    embeddings: torch.Tensor
    counts: list[int] | None = None
    model_id: str | None = None

    def __post_init__(self) -> None:
        """Checks the contents (:class:`DataError`, a ``ValueError``)."""
        emb = self.embeddings
        if not torch.is_tensor(emb) or not emb.is_floating_point():
            raise DataError(
                "the embeddings must be a float tensor, got "
                f"{getattr(emb, 'dtype', type(emb).__name__)}"
            )
        if emb.dim() != 2 or emb.shape[:1] != (len(self.speakers),):
            raise DataError(
                f"{len(self.speakers)} speakers but embeddings of shape "
                f"{tuple(emb.shape)}"
            )
        if not bool(torch.isfinite(emb).all()):
            bad = (~torch.isfinite(emb)).any(dim=1).nonzero()[0, 0]
            raise DataError(
                f"the embedding of speaker {self.speakers[bad]!r} holds NaN "
                "or infinite values"
            )
        if self.counts is None:
            self.counts = [1] * len(self.speakers)
        if len(self.counts) != len(self.speakers):
            raise DataError(
                f"{len(self.speakers)} speakers but {len(self.counts)} counts"
            )
        if any(n < 1 for n in self.counts):
            raise DataError(f"a file count is below 1: {self.counts}")
        if len(set(self.speakers)) != len(self.speakers):
            raise DataError("a speaker is listed twice")

    @classmethod
    def from_audio(
        cls,
        model: Embedder,
        spk2wavs: Mapping[str, Sequence[Pathlike]],
        batch_size: int = 32,
        model_id: str | None = None,
    ) -> SpeakerRegister:
        """Enrols speakers: the mean embedding of each speaker's files,
        the speakers sorted by id.

        Arguments
        ---------
        model : Embedder
            Embeds the files (``encode_files``).
        spk2wavs : mapping
            Speaker id -> audio files (:func:`enrolment_speakers`).
        batch_size : int
            Files embedded per batch.
        model_id : str, optional
            The model's :func:`model_identity`, kept in the register.

        Returns
        -------
        SpeakerRegister

        Example
        -------
        >>> class Fake:
        ...     def encode_files(self, paths, batch_size=32):
        ...         return torch.tensor([[1.0, float(p)] for p in paths])
        >>> reg = SpeakerRegister.from_audio(Fake(), {"B": [1, -1, 3],
        ...                                           "A": [0]})
        >>> reg.speakers, reg.embeddings, reg.counts
        (['A', 'B'], tensor([[1., 0.],
                [1., 1.]]), [1, 3])
        """
        speakers = sorted(spk2wavs)
        empty = [s for s in speakers if not spk2wavs[s]]
        if empty:
            raise DataError(f"no enrolment file for speaker {empty[0]!r}")
        paths = [p for s in speakers for p in spk2wavs[s]]
        embs = model.encode_files(paths, batch_size=batch_size).float()
        means, start = [], 0
        for s in speakers:
            n = len(spk2wavs[s])
            means.append(embs[start : start + n].mean(dim=0))
            start += n
        return cls(
            speakers,
            torch.stack(means) if means else embs[:0],
            [len(spk2wavs[s]) for s in speakers],
            model_id,
        )

    def update(self, other: SpeakerRegister) -> SpeakerRegister:
        """This register with ``other``'s speakers added: a new speaker is
        appended, a known one's model becomes the running mean of both
        (weighted by the counts), the speakers sorted by id.

        Raises
        ------
        ConfigError
            When the two were made by different models.

        Example
        -------
        >>> old = SpeakerRegister(["A"], torch.tensor([[1.0, 0.0]]), [3])
        >>> new = SpeakerRegister(["A", "B"], torch.tensor([[0.0, 1.0],
        ...                                                 [0.0, 2.0]]))
        >>> both = old.update(new)
        >>> both.speakers, both.embeddings, both.counts
        (['A', 'B'], tensor([[0.7500, 0.2500],
                [0.0000, 2.0000]]), [4, 1])
        """
        if other.model_id != self.model_id:
            raise ConfigError(
                f"the speakers to add were embedded by another model "
                f"({_short(other.model_id)}) than the register's "
                f"({_short(self.model_id)})"
            )
        if not self.speakers:
            return dataclasses.replace(other)
        if other.speakers and other.emb_dim != self.emb_dim:
            raise ConfigError(
                f"embeddings of size {other.emb_dim} cannot join a register "
                f"of size {self.emb_dim}"
            )
        totals = {
            s: (e.double() * n, n)
            for s, e, n in zip(
                self.speakers, self.embeddings, self.counts, strict=True
            )
        }
        for s, e, n in zip(
            other.speakers, other.embeddings, other.counts, strict=True
        ):
            total, count = totals.get(s, (0.0, 0))
            totals[s] = (total + e.double() * n, count + n)
        speakers = sorted(totals)
        return SpeakerRegister(
            speakers,
            torch.stack(
                [(totals[s][0] / totals[s][1]).float() for s in speakers]
            ),
            [totals[s][1] for s in speakers],
            self.model_id,
        )

    @property
    def emb_dim(self) -> int:
        """The embedding dimension."""
        return int(self.embeddings.shape[1])

    def save(self, path: Pathlike) -> Path:
        """Writes the register to one file, atomically (a temporary file
        renamed into place: an interrupted write leaves the old file).

        The file is a ``torch.save`` of plain data (the format number, the
        model identity, the speaker ids, a count tensor and the embeddings)
        that :meth:`load` reads with ``weights_only=True``.  The write
        holds the file's lock (:func:`register_lock`); it replaces what
        the file held: to add speakers to a saved register, use
        :meth:`add_to_file`.

        Raises
        ------
        OutputError
            When the file cannot be written.
        """
        path = Path(path)
        if path.is_dir():
            raise OutputError(f"register {path} is a folder; give a file name")
        with register_lock(path):
            self._write(path)
        return path

    def _write(self, path: Path) -> None:
        """Writes the register atomically (the caller holds the lock)."""
        data = {
            "format": REGISTER_FORMAT,
            "model_id": self.model_id,
            "speakers": list(self.speakers),
            "counts": torch.tensor(self.counts, dtype=torch.long),
            "embeddings": self.embeddings.detach().float().cpu(),
        }
        try:
            with atomic_write(path, "wb") as f:
                torch.save(data, f)
        except OSError as exc:
            raise OutputError(
                f"cannot write register {path}: {exc.strerror or exc}"
            ) from None
        logger.info("saved %d speakers to %s", len(self.speakers), path)

    def add_to_file(self, path: Pathlike) -> SpeakerRegister:
        """Adds this register's speakers to the register file ``path``
        (made if absent): load, :meth:`update`, atomic :meth:`save`, all
        under the file's lock (:func:`register_lock`), so that enrolments
        into one register at the same time all land.

        Arguments
        ---------
        path : Pathlike
            The register file.

        Returns
        -------
        SpeakerRegister
            What the file holds now.

        Raises
        ------
        ConfigError
            When the file's register was made by another model.
        DataError
            When ``path`` is not a register file.
        OutputError
            When it cannot be written.

        Example
        -------
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "speakers.pt"
        >>> a = SpeakerRegister(["A"], torch.ones(1, 2), [2], "m1")
        >>> b = SpeakerRegister(["B"], torch.zeros(1, 2), [1], "m1")
        >>> _ = a.add_to_file(path)
        >>> b.add_to_file(path).speakers, SpeakerRegister.load(path).counts
        (['A', 'B'], [2, 1])
        """
        path = Path(path)
        if path.is_dir():
            raise OutputError(f"register {path} is a folder; give a file name")
        with register_lock(path):
            if path.exists():
                old = SpeakerRegister.load(path, model_id=self.model_id)
                merged = old.update(self)
            else:
                merged = dataclasses.replace(self)
            merged._write(path)
        return merged

    @classmethod
    def load(
        cls, path: Pathlike, model_id: str | None = None
    ) -> SpeakerRegister:
        """Reads a register written by :meth:`save` (tensors and strings
        only: no code is run).

        Arguments
        ---------
        path : Pathlike
            The register file.
        model_id : str, optional
            The :func:`model_identity` of the model to use it with; a
            register made by another model is refused.

        Raises
        ------
        MissingFileError
            When the file does not exist.
        DataError
            When it is not a register file, or its contents are not
            usable: embeddings not a 2-D float tensor of one finite row
            per speaker, of the size its model identity gives, or file
            counts below 1.
        ConfigError
            When it was made by another model than ``model_id``.

        Example
        -------
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "speakers.pt"
        >>> _ = SpeakerRegister(["A"], torch.ones(1, 2), [2], "m1").save(path)
        >>> SpeakerRegister.load(path, "m1").counts
        [2]
        >>> SpeakerRegister.load(path, "m2")
        Traceback (most recent call last):
        ...
        deep_speaker_sb.errors.ConfigError: register ... another model...
        """
        path = Path(path)
        if not path.is_file():
            raise MissingFileError(
                f"register not found: {path}; make it with verify.py "
                "--enrol_save REGISTER --enrol CSV_or_DIR"
            )
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(data, dict):
                raise ValueError("not a dictionary")
            if data.get("format") != REGISTER_FORMAT:
                raise ValueError(f"unknown format {data.get('format')!r}")
            counts = data["counts"]
            if counts.is_floating_point() or counts.is_complex():
                raise ValueError(f"file counts of type {counts.dtype}")
            register = cls(
                [str(s) for s in data["speakers"]],
                data["embeddings"],  # checked as it is (float, finite)
                [int(n) for n in counts.tolist()],
                data["model_id"],
            )
            register.embeddings = register.embeddings.float()
            dim = _model_dim(register.model_id)
            if register.speakers and dim not in (None, register.emb_dim):
                raise ValueError(
                    f"embeddings of size {register.emb_dim}, but its model's "
                    f"are of size {dim}"
                )
        except (
            RuntimeError,
            ValueError,
            KeyError,
            TypeError,
            AttributeError,
            EOFError,
            pickle.UnpicklingError,
            zipfile.BadZipFile,
        ) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise DataError(
                f"{path} is not a speaker register ({msg[:120]}); make it "
                "with verify.py --enrol_save"
            ) from None
        if model_id is not None:
            register.check_model(model_id, path)
        return register

    def check_model(self, model_id: str, path: Pathlike) -> None:
        """Refuses to use the register (saved at ``path``) with a model
        whose :func:`model_identity` is not the register's.

        Raises
        ------
        ConfigError
            Naming both models (embedding size and identity).
        """
        if self.model_id != model_id:
            raise ConfigError(
                f"register {path} was made with another model "
                f"({_short(self.model_id)}) than this one "
                f"({_short(model_id)}); use the model it was made with, or "
                "enrol the speakers again into a new register"
            )

    def rank(
        self, embedding: torch.Tensor, threshold: float, top: int = 3
    ) -> list[Candidate]:
        """The ``top`` closest speakers of an embedding, closest first.

        Arguments
        ---------
        embedding : torch.Tensor
            ``[emb_dim]`` embedding of the recording.
        threshold : float
            A speaker is accepted when its score is above it.
        top : int
            Speakers returned (at least 1).

        Returns
        -------
        list of Candidate
        """
        if top < 1:
            raise ConfigError(f"--top must be at least 1, got {top}")
        if embedding.shape != (self.emb_dim,):
            raise ConfigError(
                f"an embedding of shape {tuple(embedding.shape)} cannot be "
                f"ranked against a register of size {self.emb_dim}: the "
                "register was made with another model"
            )
        scores = cosine_similarity(self.embeddings, embedding.unsqueeze(0))
        order = torch.argsort(scores, descending=True)[:top]
        return [
            Candidate(
                self.speakers[i], float(scores[i]), float(scores[i]) > threshold
            )
            for i in order.tolist()
        ]


#: The error of an identification against no enrolled speaker.
NO_SPEAKER = (
    "no speaker enrolled: call enrol(name, paths) or load_register(path) first"
)


def identify(
    model: Embedder,
    wav: Pathlike,
    speakers: SpeakerRegister | Mapping[str, Sequence[Pathlike]],
    top: int = 3,
    batch_size: int = 32,
) -> list[Candidate]:
    """Ranks enrolled speakers by their similarity to a recording.

    The one identification: ``verify.py --wav`` (against ``--enrol`` or a
    saved ``--register``) and :meth:`DeepSpeaker.identify
    <deep_speaker_sb.inference.DeepSpeaker.identify>` all call it.  The
    recording is embedded first, so that an unreadable file (or one
    without speech) fails before the enrolment audio is embedded; every
    file goes through the model's ``encode_files``, whose speech check
    (``DeepSpeaker``'s) refuses silence and noise among the enrolment
    files too.  The recording is speaker
    ``candidates[0].speaker`` when ``candidates[0].accepted``, unknown
    otherwise.

    Arguments
    ---------
    model : Embedder
        The model (its ``threshold`` decides acceptance).
    wav : Pathlike
        The recording to identify.
    speakers : SpeakerRegister or mapping
        A register (e.g. :meth:`SpeakerRegister.load`, checked to be the
        model's), or speaker id -> enrolment files
        (:func:`enrolment_speakers`), enrolled after the recording is
        embedded.
    top : int
        Speakers returned.
    batch_size : int
        Files embedded per batch.

    Returns
    -------
    list of Candidate
        The ``top`` closest speakers, closest first.

    Raises
    ------
    ConfigError
        For ``top`` below 1 or a register without speakers.

    Example
    -------
    >>> class Fake:  # embeds "<x>" as the vector (1, x)
    ...     threshold = 0.9
    ...     def encode_files(self, paths, batch_size=32):
    ...         return torch.tensor([[1.0, float(p)] for p in paths])
    >>> [c.speaker for c in identify(Fake(), "0.9", {"A": ["1"],
    ...                                                "B": ["-1"]})]
    ['A', 'B']
    >>> saved = SpeakerRegister(["A", "B"], torch.tensor([[1.0, 1.0],
    ...                                                   [1.0, -1.0]]))
    >>> identify(Fake(), "0.9", saved, top=1)[0].speaker
    'A'
    """
    if top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")
    if isinstance(speakers, SpeakerRegister) and not speakers.speakers:
        raise ConfigError(NO_SPEAKER)
    query = model.encode_files([wav], batch_size=1)[0]
    if isinstance(speakers, SpeakerRegister):
        register = speakers
    else:
        register = SpeakerRegister.from_audio(model, speakers, batch_size)
    return register.rank(query, model.threshold, top)


def _model_dim(model_id: str | None) -> int | None:
    """The embedding size a :func:`model_identity` names (None for none).

    Example
    -------
    >>> _model_dim("16-0123abcd"), _model_dim("m1"), _model_dim(None)
    (16, None, None)
    """
    dim, sep, _ = (model_id or "").partition("-")
    return int(dim) if sep and dim.isdigit() else None


def _short(model_id: str | None) -> str:
    """A model identity as shown in messages: emb_dim and 12 hex digits.

    Example
    -------
    >>> _short("16-0123456789abcdef"), _short(None)
    ('emb_dim 16, id 0123456789ab', 'unknown')
    """
    if not model_id:
        return "unknown"
    dim, _, digest = model_id.partition("-")
    return f"emb_dim {dim}, id {digest[:12]}"
