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

What several test files share lives here too, so that no test file
imports another: the narrow models and their arguments
(:data:`TINY_RESCNN`, :func:`narrow_softmax_args`, :func:`narrow_parts`,
:func:`export_narrow`), generated audio (:func:`speech_like`,
:func:`harmonics`), the softmax train log's parser
(:func:`log_epochs`) and the documents the doc tests read
(:func:`doc_files`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
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
#: The sample rate of the generated test audio.
SR = 8000


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


# ------------------------------------------------------------- models


#: A narrow ResCNN's constructor arguments (fake checkpoints, exports).
TINY_RESCNN = {
    "n_mels": 24,
    "channels": [4, 8],
    "emb_dim": 16,
    "blocks_per_stage": 1,
}
#: The same model as overrides of softmax.yaml / triplet.yaml.
TINY_RESCNN_ARGS = [
    "--n_mels=24",
    "--channels=[4, 8]",
    "--emb_dim=16",
    "--blocks_per_stage=1",
]
#: Overrides of softmax.yaml for a narrow, fast run on the CPU.
NARROW_SOFTMAX = [
    "--channels", "[8, 16, 32, 64]",
    "--emb_dim", "32",
    "--batch_size", "8",
    "--lr", "0.003",
    "--lr_final", "0.003",
    "--num_workers", "0",
    "--device", "cpu",
    "--noprogressbar",
]  # fmt: skip


def narrow_softmax_args(
    corpus: Path, prep: Path, out: Path, *extra: str
) -> list[str]:
    """``train_softmax.py``'s arguments for a narrow run (``extra`` last)."""
    return [
        str(ROOT / "hparams" / "softmax.yaml"),
        "--data_folder", str(corpus),
        "--prep_folder", str(prep),
        "--output_folder", str(out),
        *NARROW_SOFTMAX,
        *extra,
    ]  # fmt: skip


def log_epochs(train_log: Path) -> list[dict[str, float]]:
    """Parses a softmax run's ``train_log.txt`` into one dict per epoch
    line (epoch, train_loss, valid_acc)."""
    rows = []
    for line in train_log.read_text().splitlines():
        epoch = re.search(r"epoch: (\d+)", line)
        loss = re.search(r"train loss: ([\d.e+-]+)", line)
        acc = re.search(r"valid ACC: ([\d.e+-]+)", line)
        rows.append(
            {
                "epoch": int(epoch.group(1)),
                "train_loss": float(loss.group(1)),
                "valid_acc": float(acc.group(1)),
            }
        )
    return rows


def narrow_parts(kind: str, seed: int = 0, **options) -> tuple:
    """Features (``kind``: fbank or mfcc, at :data:`SR`), a sentence
    normalizer and a narrow ResCNN with random batch-norm statistics,
    all in eval mode (``options``: more of ResCNN's arguments)."""
    from speechbrain.processing.features import InputNormalization

    from deep_speaker_sb.features import Features
    from deep_speaker_sb.lobes.rescnn import ResCNN

    torch.manual_seed(seed)
    feats = Features(kind=kind, sample_rate=SR, n_mels=32, n_mfcc=20)
    norm = InputNormalization(norm_type="sentence")
    model = ResCNN(
        n_mels=feats.n_features,
        channels=(8, 16),
        emb_dim=24,
        blocks_per_stage=1,
        **options,
    )
    with torch.no_grad():  # batch-norm statistics the export must carry
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return feats.eval(), norm.eval(), model.eval()


def export_narrow(
    folder: Path, kind: str, onnx: bool = True, **options
) -> tuple:
    """Exports :func:`narrow_parts` ``(kind)`` to ``folder`` (with its
    ONNX graphs, int8 calibrated on :func:`speech_like` audio, unless
    ``onnx`` is false; ``options``: more of ``export_pretrained``'s
    arguments); returns the parts."""
    from deep_speaker_sb.export import export_pretrained

    parts = narrow_parts(kind)
    calibration = [torch.from_numpy(speech_like(2.0, s)) for s in range(4)]
    export_pretrained(
        folder,
        compute_features=parts[0],
        mean_var_norm=parts[1],
        embedding_model=parts[2],
        threshold=0.4,
        card={"data": "unit test"},
        onnx=onnx,
        calibration=calibration,
        **options,
    )
    return parts


# -------------------------------------------------------------- audio


def harmonics(
    rng: np.random.Generator, seconds: float, sr: int = SR
) -> tuple[np.ndarray, np.ndarray]:
    """A voice-like sum of harmonics below 3.4 kHz with random pitch and
    amplitudes from ``rng``; returns (time in seconds, signal)."""
    t = np.arange(int(sr * seconds)) / sr
    f0 = rng.uniform(90, 220)
    sig = sum(
        rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * k * f0 * t + k)
        for k in range(1, int(3400 // f0))
    )
    return t, sig


def speech_like(seconds: float, seed: int) -> np.ndarray:
    """:func:`harmonics` under a syllable-rate envelope, at :data:`SR`
    (passes the speech check)."""
    rng = np.random.default_rng(seed)
    t, sig = harmonics(rng, seconds)
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5) * t), 0.01, 1)
    return (0.3 * sig * envelope / np.abs(sig).max()).astype(np.float32)


# --------------------------------------------------------------- docs


#: A Markdown code fence (either spelling).
MARKDOWN_FENCE = re.compile(r"^\s*(```|~~~)")


def doc_files() -> list[Path]:
    """The Markdown files the doc tests read: README, docs/, recipes/."""
    files = [ROOT / "README.md"]
    files += sorted((ROOT / "docs").glob("*.md"))
    files += sorted((ROOT / "recipes").rglob("*.md"))
    return files
