"""Shared fixtures and helpers of the test suite.

- :func:`tiny_corpus` / :func:`tiny_prepared`: one tiny generated corpus
  and its prepared manifests, session-scoped so that the end-to-end tests
  of every stage reuse them;
- :func:`load_script`: a top-level script (``verify.py``, ...) imported
  as a module, to call its functions in-process;
- :func:`run_script`: a top-level script run in a subprocess, as a user
  runs it (one thread per process);
- :func:`run_in_process`: a top-level script's ``main`` run in this
  process through ``run_cli`` (exit status and stderr, as a user sees
  them, without a new interpreter).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

torch.set_num_threads(1)

#: The repository root (where the scripts are).
ROOT = Path(__file__).resolve().parents[1]
#: The environment of script subprocesses: one thread per process.
SCRIPT_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
#: The one timeout of test subprocesses: a guard against a hung process,
#: never a speed limit (a test must not depend on how fast the machine
#: is, and a loaded machine runs the tiny trainings many times slower).
HANG_TIMEOUT_S = 1800.0


def load_script(name: str) -> ModuleType:
    """Imports the top-level script ``name`` (e.g. ``"verify.py"``), once:
    test files that load the same script share one module (a second copy
    would replace the first in ``sys.modules``, and doctest would then
    find no example of the first copy's functions)."""
    path = ROOT / name
    loaded = sys.modules.get(f"_script_{path.stem}")
    if loaded is not None and Path(loaded.__file__) == path:
        return loaded
    spec = importlib.util.spec_from_file_location(f"_script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    # registered first, as an import would: dataclasses look it up
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def run_script(
    name: str,
    *args: str,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    timeout: float = HANG_TIMEOUT_S,
) -> subprocess.CompletedProcess:
    """Runs ``python <ROOT>/<name> *args``; captures text output."""
    return subprocess.run(
        [sys.executable, str(ROOT / name), *map(str, args)],
        cwd=cwd,
        env=SCRIPT_ENV if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_in_process(name: str, argv: list[str]) -> tuple[int, str]:
    """Runs ``main(argv)`` of the top-level script ``name`` through
    :func:`deep_speaker_sb.cli.run_cli`; returns (exit status, stderr)."""
    from deep_speaker_sb.cli import run_cli

    script = load_script(name)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = run_cli(lambda: script.main(argv))
    return code, err.getvalue()


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A VIVOS-layout corpus: 4 train speakers, 3 test speakers."""
    from deep_speaker_sb.data.synthetic import generate_corpus

    out = tmp_path_factory.mktemp("corpus") / "vivos"
    return generate_corpus(
        out,
        n_train_speakers=4,
        n_test_speakers=3,
        utts_per_speaker=6,
        seed=7,
    )


@pytest.fixture(scope="session")
def tiny_prepared(
    tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The prepared 8 kHz manifests of :func:`tiny_corpus` (save folder)."""
    from deep_speaker_sb.data.vivos import prepare_vivos

    save = tmp_path_factory.mktemp("prepared") / "vivos8k"
    prepare_vivos(tiny_corpus, save, seg_dur=3.0, min_dur=1.0, seed=1)
    return save
