"""The data stage's files, read back: ``data/processed/<dataset>.pt``."""

from __future__ import annotations

from pathlib import Path

import torch

from experiments.results import paths


class DataError(RuntimeError):
    """A dataset that cannot be provided or read: its name, and how to provide it."""


def load(name: str, root: Path = paths.PROCESSED) -> dict:
    path = paths.processed(name, root)
    if not path.is_file():
        raise DataError(f"{path} does not exist; run the data stage first (`dvc repro data`)")
    return torch.load(path, weights_only=True)
