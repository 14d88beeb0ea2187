"""Binary units: Linear(d->1) + Heaviside on "Ones" (uniform Hamming weight, tau = 0.5)
(experiment 5: ``bnn``).

The step has derivative 0 almost everywhere, so it only trains with a
surrogate backward: Step / 1 (``d(Linear)``) and Step / rectangular(-0.5, 0.5),
with Logistic / d(Logistic) as the reference.  MSE on 0/1 targets.  Each
configuration names its input size ``d``; the ``data`` stage writes one set per d
(``ones_bnn``) and ``config_data`` hands the loop the one a configuration uses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from experiments.tasks import models

EXTRA_CONFIG_KEYS = {"d": int}


def prepare(data: dict, device: torch.device) -> dict:
    sets = {d: {"train_x": s["train_x"].to(device), "train_y": s["train_y"][:, None].to(device),
                "test_x": s["test_x"].to(device), "test_y": s["test_y"][:, None].to(device),
                "meta": s["meta"]}
            for d, s in data["sets"].items()}
    return {"sets": sets, "meta": data["meta"]}


def config_data(data: dict, cfg: dict) -> dict:
    return data["sets"][str(cfg["d"])]


def build_model(spec: dict, cfg: dict, meta: dict) -> nn.Module:
    return models.single_unit(meta["d"], cfg)


def loss_fn(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(output, target)


def n_correct(output: torch.Tensor, target: torch.Tensor) -> int:
    return int(((output > 0.5).to(target.dtype) == target).sum())
