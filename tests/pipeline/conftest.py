"""Fixtures for the monorepo (pipeline) tests. Nothing here downloads anything."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import _mirror


@pytest.fixture(scope="session")
def mirror() -> Path:
    m = _mirror()
    if m is None:
        pytest.skip("no MNIST mirror: set FREEGRAD_DATA_MIRROR (CI uses ../shared/datasets)")
    return m


@pytest.fixture(scope="session")
def venv_bin() -> Path:
    return Path(sys.executable).parent


@pytest.fixture()
def mlflow_uri(tmp_path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlruns.db'}"
    (tmp_path / "mlflow").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri
