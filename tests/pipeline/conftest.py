"""Fixtures for the monorepo (pipeline) tests. Nothing here downloads anything."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from experiments import paths


def _mirror() -> Path | None:
    env = os.environ.get("FREEGRAD_DATA_MIRROR")
    for cand in ([Path(env)] if env else []) + [paths.ROOT.parent / "shared" / "datasets"]:
        if (cand / "MNIST" / "raw").is_dir():
            return cand.resolve()
    return None


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
