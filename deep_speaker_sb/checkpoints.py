"""Checkpoints that are complete or absent, and loading a stage's best.

:class:`SafeCheckpointer` is SpeechBrain's ``Checkpointer`` (both stages'
YAMLs make one) with three changes: a checkpoint is written into a hidden
temporary folder and renamed to its ``CKPT+...`` name only once every
file and the meta file are on disk, so a failed save (a full disk, a
killed run) leaves no half checkpoint; a damaged checkpoint (an empty,
truncated or corrupt file, a file of another kind where a torch file
belongs, an unreadable meta file) is moved aside to ``damaged-CKPT+...``
with a warning, so that resuming takes the previous one; and a checkpoint
that cannot be written (disk full, no permission) is an
:class:`~deep_speaker_sb.errors.OutputError`, one ``error:`` line.

The triplet stage starts from the softmax stage's best checkpoint, and the
export takes the triplet stage's best one; both need only the *model
parts* (the embedding model and the feature normalizer), not the
classifier, optimizer or epoch counter.  :func:`load_best_parts` does
that for both.

Authors
 * deep-speaker-sb contributors
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from speechbrain.utils.checkpoints import (
    CKPT_PREFIX,
    DEFAULT_SAVE_HOOKS,
    METAFNAME,
    PARAMFILE_EXT,
    Checkpoint,
    Checkpointer,
    get_default_hook,
    torch_save,
    torch_save_once_per_node,
)
from speechbrain.utils.distributed import (
    ddp_barrier,
    ddp_broadcast,
    if_main_process,
)
from speechbrain.utils.logger import get_logger

from deep_speaker_sb.errors import ConfigError, MissingFileError, OutputError
from deep_speaker_sb.utils import Pathlike

logger = get_logger(__name__)

#: Prefix of the folder a checkpoint is written into before its rename.
TMP_PREFIX = ".tmp-"
#: Prefix a damaged checkpoint folder is renamed with (kept, not listed).
DAMAGED_PREFIX = "damaged-"
#: Below this many free bytes, a failed torch write means a full disk.
FULL_DISK_BYTES = 1 << 20
#: What a checkpoint that cannot be written tells the user.
RESUME_HINT = (
    "free some space (or fix the folder) and run the same command again: "
    "it resumes from the last complete checkpoint"
)


def free_bytes(folder: Pathlike) -> int:
    """Bytes an unprivileged process may still write in ``folder``.

    Example
    -------
    >>> import tempfile
    >>> free_bytes(tempfile.mkdtemp()) >= 0
    True
    """
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize


def file_problem(path: Pathlike, torch_file: bool = False) -> str | None:
    """What is wrong with a checkpoint file, or None.

    A file that starts like a zip archive (as ``torch.save`` writes) must
    be a complete one whose members pass their CRC check; no checkpoint
    file may be empty; with ``torch_file``, the file must be such an
    archive.

    Arguments
    ---------
    path : Pathlike
        The file (``<name>.ckpt``).
    torch_file : bool
        Whether ``torch.save`` wrote it (a module's or optimizer's state).

    Returns
    -------
    str or None
        E.g. ``"is truncated or corrupt"``.

    Example
    -------
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "model.ckpt"
    >>> torch.save({"w": torch.ones(3)}, p)
    >>> file_problem(p, torch_file=True) is None
    True
    >>> _ = p.write_bytes(p.read_bytes()[:100])
    >>> file_problem(p)
    'is truncated or corrupt'
    >>> _ = p.write_text("3")
    >>> file_problem(p), file_problem(p, torch_file=True)
    (None, 'is not a file torch.save wrote')
    """
    path = Path(path)
    try:
        if path.stat().st_size == 0:
            return "is empty"
        with open(path, "rb") as f:
            head = f.read(4)
        if head == b"PK\x03\x04":
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
            return None if bad is None else f"is corrupt ({bad})"
    except zipfile.BadZipFile:
        return "is truncated or corrupt"
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    return "is not a file torch.save wrote" if torch_file else None


def _fsync(path: Path) -> None:
    """Flushes a file or folder to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class SafeCheckpointer(Checkpointer):
    """SpeechBrain's ``Checkpointer``, with checkpoints that are complete
    or absent (see the module's description).

    It takes the same arguments, lists and loads the same ``CKPT+...``
    folders, and is made by both stages' YAMLs (``checkpointer:
    !new:deep_speaker_sb.checkpoints.SafeCheckpointer``).

    Example
    -------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> lin = torch.nn.Linear(2, 2)
    >>> saver = SafeCheckpointer(folder, {"model": lin})
    >>> first = saver.save_checkpoint(meta={"epoch": 1})
    >>> newest = saver.save_checkpoint(meta={"epoch": 2})
    >>> sorted(p.name[:5] for p in folder.iterdir())  # no temporary folder
    ['CKPT+', 'CKPT+']
    >>> _ = (newest.path / "model.ckpt").write_bytes(b"PK\x03\x04 cut")
    >>> saver.recover_if_possible().meta["epoch"]  # warns, takes the other
    1
    >>> sorted(p.name.split("+")[0] for p in folder.iterdir())
    ['CKPT', 'damaged-CKPT']
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._saving_into: Path | None = None
        # checkpoint folder -> the recoverables it was checked for
        self._intact: dict[Path, frozenset[str]] = {}

    # Saving

    def save_checkpoint(
        self,
        meta: Mapping[str, Any] | None = None,
        end_of_epoch: bool = True,
        name: str | None = None,
        verbosity: int = logging.INFO,
    ) -> Checkpoint | None:
        """Saves a checkpoint (as ``Checkpointer.save_checkpoint``) into a
        temporary folder, renamed to its ``CKPT+...`` name once complete.

        Raises
        ------
        OutputError
            When it cannot be written (disk full, no permission); no
            checkpoint folder is left.
        """
        final = tmp = None
        if if_main_process():
            self._remove_leftovers()
            final = (
                self._new_checkpoint_dirpath()
                if name is None
                else self._custom_checkpoint_dirpath(name)
            )
            tmp = final.with_name(TMP_PREFIX + final.name)
        final, tmp = ddp_broadcast((final, tmp), src=0)
        self._saving_into = tmp
        try:
            saved = super().save_checkpoint(
                meta=dict(meta or {}),
                end_of_epoch=end_of_epoch,
                verbosity=logging.DEBUG,
            )
            ddp_barrier()  # every process's files are written
            if if_main_process():
                for path in tmp.iterdir():
                    _fsync(path)
                self._rename_into_place(tmp, final)
        except BaseException as exc:
            if if_main_process() and tmp is not None:
                self._fail(exc, tmp)
            raise
        finally:
            self._saving_into = None
        if not if_main_process():
            return None
        self._intact[final] = frozenset(self.recoverables)
        logger.log(verbosity, "Saved a checkpoint in %s", final)
        return Checkpoint(
            final,
            saved.meta,
            {k: final / p.name for k, p in saved.paramfiles.items()},
        )

    def _new_checkpoint_dirpath(self) -> Path:
        # While saving, the parent class writes into the temporary folder.
        if self._saving_into is not None:
            return self._saving_into
        return super()._new_checkpoint_dirpath()

    def _remove_leftovers(self) -> None:
        """Removes the temporary folders of saves that were cut short."""
        for old in self.checkpoints_dir.glob(f"{TMP_PREFIX}{CKPT_PREFIX}*"):
            shutil.rmtree(old, ignore_errors=True)
            logger.info("removed %s, left by an interrupted save", old)

    def _rename_into_place(self, tmp: Path, final: Path) -> None:
        """``tmp`` becomes ``final`` (replacing a checkpoint of that
        custom name, if any), then the rename is flushed."""
        old = None
        if final.exists():
            old = final.with_name(f"{TMP_PREFIX}{final.name}.old")
            os.rename(final, old)
        os.rename(tmp, final)
        _fsync(final.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def _fail(self, exc: BaseException, tmp: Path) -> None:
        """Removes the half-written checkpoint; raises an OutputError for
        a save that failed for want of space or permission."""
        disk_full = False
        with contextlib.suppress(OSError):
            disk_full = free_bytes(self.checkpoints_dir) < FULL_DISK_BYTES
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OutputError):
            return
        where = f"cannot write a checkpoint in {self.checkpoints_dir}"
        if isinstance(exc, OSError):
            reason = exc.strerror or str(exc)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                reason = "no space left on device"
            raise OutputError(f"{where}: {reason}; {RESUME_HINT}") from None
        if isinstance(exc, RuntimeError) and disk_full:
            # torch's own file writer says only "file write failed"
            raise OutputError(
                f"{where}: no space left on device; {RESUME_HINT}"
            ) from None

    # Listing and loading

    def recover_if_possible(self, *args: Any, **kwargs: Any) -> Any:
        """Loads the checkpoint ``Checkpointer.recover_if_possible``
        picks among the complete ones, every file checked again."""
        self._intact.clear()
        return super().recover_if_possible(*args, **kwargs)

    def list_checkpoints(self) -> list[Checkpoint]:
        """The complete checkpoints; a damaged one is moved aside to
        ``damaged-CKPT+...`` with a warning (and not listed)."""
        found = []
        for path in sorted(self._list_checkpoint_dirs()):
            try:
                ckpt = self._construct_checkpoint_objects([path])[0]
                problem = self._problem(ckpt)
            except FileNotFoundError:
                continue  # moved aside meanwhile (another process)
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
                problem = f"{METAFNAME} cannot be read ({exc})"
            if problem is None:
                found.append(ckpt)
            else:
                self._set_aside(path, problem)
        return found

    def _problem(self, ckpt: Checkpoint) -> str | None:
        """What makes ``ckpt`` unusable, or None (checked once for a
        given set of recoverables)."""
        names = frozenset(self.recoverables)
        if self._intact.get(ckpt.path) == names:
            return None
        meta = ckpt.meta
        if not isinstance(meta, dict) or "unixtime" not in meta:
            return f"{METAFNAME} is incomplete"
        for name in sorted(names - set(ckpt.paramfiles)):
            optional = (
                self.allow_partial_load
                or self.optional_recoverables.get(name)
                or "dataloader" in name
            )
            if not optional:
                return f"it has no {name}{PARAMFILE_EXT}"
        for name, path in sorted(ckpt.paramfiles.items()):
            problem = file_problem(path, self._torch_file(name))
            if problem is not None:
                return f"{path.name} {problem}"
        self._intact[ckpt.path] = names
        return None

    def _torch_file(self, name: str) -> bool:
        """Whether recoverable ``name`` is saved by SpeechBrain's
        ``torch_save`` (a module's, an optimizer's state)."""
        if name not in self.recoverables or name in self.custom_save_hooks:
            return False
        hook = get_default_hook(self.recoverables[name], DEFAULT_SAVE_HOOKS)
        return hook in (torch_save, torch_save_once_per_node)

    def _set_aside(self, path: Path, problem: str) -> None:
        """Renames a damaged checkpoint folder (main process) and warns."""
        if not if_main_process():
            return
        target = path.with_name(DAMAGED_PREFIX + path.name)
        k = 1
        while target.exists():
            target = path.with_name(f"{DAMAGED_PREFIX}{k}-{path.name}")
            k += 1
        try:
            os.rename(path, target)
        except OSError:
            return  # gone already
        logger.warning(
            "checkpoint %s is damaged: %s; moved it to %s and use the "
            "previous checkpoint, if any",
            path,
            problem,
            target.name,
        )


#: Checkpoint name (the same in both stages' checkpointers) -> ``modules``
#: key, for the parts that move from one stage to the next.
MODEL_PARTS = {
    "embedding_model": "embedding_model",
    "normalizer": "mean_var_norm",
}


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DataParallel / DDP wrapper, if any.

    Example
    -------
    >>> lin = torch.nn.Linear(2, 2)
    >>> unwrap(torch.nn.DataParallel(lin)) is lin, unwrap(lin) is lin
    (True, True)
    """
    return getattr(module, "module", module)


def input_config(modules: Mapping[str, torch.nn.Module]) -> dict[str, Any]:
    """The settings that shape the model's input: the feature front end's
    arguments and the normalization type (as far as ``modules`` holds
    them).  Both stages store them in every checkpoint's metadata
    (``input``), and :func:`load_best_parts` compares them on load.

    Example
    -------
    >>> from speechbrain.processing.features import InputNormalization
    >>> from deep_speaker_sb.features import Features
    >>> input_config({"compute_features": Features(n_mels=40),
    ...               "mean_var_norm": InputNormalization("global")})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'kind': 'fbank', 'sample_rate': 8000, 'n_mels': 40, 'n_mfcc': 40,
     'feature_norm': 'global'}
    """
    config: dict[str, Any] = {}
    if "compute_features" in modules:
        config.update(unwrap(modules["compute_features"]).config)
    if "mean_var_norm" in modules:
        norm = modules["mean_var_norm"]
        config["feature_norm"] = unwrap(norm).norm_type
    return config


def load_best_parts(
    folder: Pathlike,
    modules: Mapping[str, torch.nn.Module],
    *,
    max_key: str | None = None,
    min_key: str | None = None,
    missing: str,
) -> Checkpoint:
    """Loads the model parts of the best checkpoint in ``folder``.

    Arguments
    ---------
    folder : Pathlike
        A stage's checkpoint folder (``.../save``).
    modules : mapping
        Holds ``embedding_model`` and ``mean_var_norm``.
    max_key, min_key : str, optional
        The checkpoint meta key to maximize (``"ACC"``) or minimize
        (``"EER"``).
    missing : str
        The error message when there is no such checkpoint.

    Returns
    -------
    Checkpoint
        The checkpoint loaded (``path``, ``meta``).

    Raises
    ------
    MissingFileError
        When there is no checkpoint with the key, or it lacks a part.
    ConfigError
        When its weights do not fit the model of the YAML, or it was
        trained on other input (:func:`input_config`: feature type,
        sample rate, bands, normalization).

    Example
    -------
    >>> import tempfile
    >>> from speechbrain.processing.features import InputNormalization
    >>> from deep_speaker_sb.lobes.rescnn import ResCNN
    >>> modules = {"embedding_model": ResCNN(channels=(4,), emb_dim=8),
    ...            "mean_var_norm": InputNormalization("sentence")}
    >>> load_best_parts(tempfile.mkdtemp(), modules, max_key="ACC",
    ...                 missing="train first")
    Traceback (most recent call last):
    ...
    deep_speaker_sb.errors.MissingFileError: train first
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError(missing)
    checkpointer = SafeCheckpointer(
        folder,
        recoverables={name: modules[key] for name, key in MODEL_PARTS.items()},
    )
    ckpt = checkpointer.find_checkpoint(max_key=max_key, min_key=min_key)
    if ckpt is None:
        raise MissingFileError(missing)
    saved, now = ckpt.meta.get("input") or {}, input_config(modules)
    differ = sorted(k for k in saved.keys() & now.keys() if saved[k] != now[k])
    if differ:
        diffs = ", ".join(
            f"{k} {saved[k]!r} (YAML: {now[k]!r})" for k in differ
        )
        raise ConfigError(
            f"checkpoint {ckpt.path} was trained with other input settings: "
            f"{diffs}; give both stages the same settings"
        )
    lacking = [name for name in MODEL_PARTS if name not in ckpt.paramfiles]
    if lacking:
        raise MissingFileError(
            f"checkpoint {ckpt.path} has no {', '.join(lacking)}"
        )
    try:
        checkpointer.load_checkpoint(ckpt)
    except RuntimeError as exc:
        raise ConfigError(
            f"checkpoint {ckpt.path} does not fit the model of this YAML "
            "(the model sections of softmax.yaml and triplet.yaml must be "
            f"the same): {str(exc).splitlines()[0]}"
        ) from exc
    return ckpt
