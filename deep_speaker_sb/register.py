"""Speaker identification: enrolled speakers, their models, ranked answers.

Speakers are enrolled from a folder laid out as ``<SPK>/<file>.wav`` or
from a prepared manifest (:func:`enrolment_speakers`).  A speaker's model
is the mean of its files' embeddings, re-normalized
(:meth:`SpeakerRegister.from_audio`); a recording is identified by ranking
the speakers by the cosine similarity of their models to its embedding
(:meth:`SpeakerRegister.rank`, :func:`identify`), a speaker being accepted
only above the model's decision threshold.

Example
-------
>>> register = SpeakerRegister(["A", "B"], torch.eye(2))
>>> register.rank(torch.tensor([0.6, 0.8]), threshold=0.7)
... # doctest: +NORMALIZE_WHITESPACE
[Candidate(speaker='B', score=0.800000011920929, accepted=True),
 Candidate(speaker='A', score=0.6000000238418579, accepted=False)]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from deep_speaker_sb.dataio import (
    read_manifest,
    speaker_utterances,
    utterances,
)
from deep_speaker_sb.errors import ConfigError, DataError, MissingFileError
from deep_speaker_sb.evaluation import Embedder
from deep_speaker_sb.scoring import cosine_similarity
from deep_speaker_sb.utils import Pathlike

#: Audio files an enrolment folder may hold.
AUDIO_SUFFIXES = (".wav", ".flac")


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
        ``[len(speakers), emb_dim]`` speaker models, in the same order.
    """

    speakers: list[str]
    embeddings: torch.Tensor

    def __post_init__(self) -> None:
        if self.embeddings.shape[:1] != (len(self.speakers),):
            raise ValueError(
                f"{len(self.speakers)} speakers but embeddings of shape "
                f"{tuple(self.embeddings.shape)}"
            )

    @classmethod
    def from_audio(
        cls,
        model: Embedder,
        spk2wavs: Mapping[str, Sequence[Pathlike]],
        batch_size: int = 32,
    ) -> SpeakerRegister:
        """Enrols speakers: the mean (re-normalized) embedding of each
        speaker's files, the speakers sorted by id.

        Example
        -------
        >>> class Fake:
        ...     def encode_files(self, paths, batch_size=32):
        ...         return torch.tensor([[1.0, float(p)] for p in paths])
        >>> reg = SpeakerRegister.from_audio(Fake(), {"B": [1, -1],
        ...                                           "A": [0]})
        >>> reg.speakers, reg.embeddings
        (['A', 'B'], tensor([[1., 0.],
                [1., 0.]]))
        """
        speakers = sorted(spk2wavs)
        paths = [p for s in speakers for p in spk2wavs[s]]
        embs = model.encode_files(paths, batch_size=batch_size)
        means, start = [], 0
        for s in speakers:
            n = len(spk2wavs[s])
            means.append(embs[start : start + n].mean(dim=0))
            start += n
        return cls(
            speakers,
            torch.nn.functional.normalize(torch.stack(means), dim=1),
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
        scores = cosine_similarity(self.embeddings, embedding.unsqueeze(0))
        order = torch.argsort(scores, descending=True)[:top]
        return [
            Candidate(
                self.speakers[i], float(scores[i]), float(scores[i]) > threshold
            )
            for i in order.tolist()
        ]


def identify(
    model: Embedder,
    wav: Pathlike,
    spk2wavs: Mapping[str, Sequence[Pathlike]],
    top: int = 3,
    batch_size: int = 32,
) -> list[Candidate]:
    """Ranks enrolled speakers by their similarity to a recording.

    The recording is embedded first, so that an unreadable file fails
    before the enrolment audio is embedded.  The recording is speaker
    ``candidates[0].speaker`` when ``candidates[0].accepted``, unknown
    otherwise.

    Arguments
    ---------
    model : Embedder
        The model (its ``threshold`` decides acceptance).
    wav : Pathlike
        The recording to identify.
    spk2wavs : mapping
        Speaker id -> enrolment files (:func:`enrolment_speakers`).
    top : int
        Speakers returned.
    batch_size : int
        Files embedded per batch.

    Returns
    -------
    list of Candidate
        The ``top`` closest speakers, closest first.

    Example
    -------
    >>> class Fake:  # embeds "<x>" as the vector (1, x)
    ...     threshold = 0.9
    ...     def encode_files(self, paths, batch_size=32):
    ...         return torch.tensor([[1.0, float(p)] for p in paths])
    >>> [c.speaker for c in identify(Fake(), "0.9", {"A": ["1"],
    ...                                                "B": ["-1"]})]
    ['A', 'B']
    """
    if top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")
    query = model.encode_files([wav], batch_size=1)[0]
    register = SpeakerRegister.from_audio(model, spk2wavs, batch_size)
    return register.rank(query, model.threshold, top)
