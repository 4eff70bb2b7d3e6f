"""Test-wide setup for the suite and the doctests of ``deep_speaker_sb``.

Every test (doctests included) gets ``tempfile``'s default folder pointed
at its own ``tmp_path``, so the ``tempfile.mkdtemp()`` calls of the doctest
examples leave nothing behind in the system's temporary folder.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_tempdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
