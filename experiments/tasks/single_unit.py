"""The single-unit classifier, Linear(d->1) + activation, BCE (experiment 1: ``suc``).

The data (``ones``: d, N, tau, 80/20 split) come from the ``data`` stage.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from experiments.tasks import models


def prepare(data: dict, device: torch.device) -> dict:
    return {
        "train_x": data["train_x"].to(device),
        "train_y": data["train_y"][:, None].to(device),
        "test_x": data["test_x"].to(device),
        "test_y": data["test_y"][:, None].to(device),
        "meta": data["meta"],
    }


def build_model(spec: dict, cfg: dict, meta: dict) -> nn.Module:
    return models.single_unit(meta["d"], cfg)  # Linear(d->1) + the configuration's activation


def loss_fn(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy(output, target)


def n_correct(output: torch.Tensor, target: torch.Tensor) -> int:
    return int(((output > 0.5).to(target.dtype) == target).sum())
