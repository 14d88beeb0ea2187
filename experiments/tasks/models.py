"""Shared models and task pieces of the paper's experiments.

* ``single_unit`` - Linear(d->1) + activation (experiment 1 and the binary units).
* ``mlp`` - 64 -> hidden (activation) -> 10 (experiment 2, DIGITS).
* ``LeNet5`` - the paper's LeNet-5 (experiments 3 and 4): conv(1->6, 5, pad 2) - act -
  avgpool - conv(6->16, 5) - act - avgpool - fc 400->120 - act - fc 120->84 - act -
  fc 84->10; 61,706 parameters.

and the task pieces the task modules bind (``prepare``, ``loss_fn``,
``n_correct``): images as in-memory float tensors in [0, 1] batched by index,
cross-entropy on logits.  Every activation is an ``fg.Activation`` so the
configuration's backward rule reaches it.
"""

from __future__ import annotations

import freegrad as fg
import torch
import torch.nn.functional as F
from torch import nn


def activation(cfg: dict) -> nn.Module:
    return fg.Activation(cfg["forward"], **cfg.get("forward_params", {}))


def single_unit(d: int, cfg: dict) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d, 1), activation(cfg))


def mlp(cfg: dict, n_in: int = 64, hidden: int = 64, n_out: int = 10) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), activation(cfg), nn.Linear(hidden, n_out))


class LeNet5(nn.Sequential):
    """LeNet-5 with one activation (forward and backward) in every hidden layer."""

    def __init__(self, cfg: dict, n_classes: int = 10):
        super().__init__(
            nn.Conv2d(1, 6, 5, padding=2), activation(cfg), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), activation(cfg), nn.AvgPool2d(2),
            nn.Flatten(),
            nn.Linear(400, 120), activation(cfg),
            nn.Linear(120, 84), activation(cfg),
            nn.Linear(84, n_classes),
        )


def n_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --- image classification (MNIST, Fashion-MNIST) -------------------------------------------


def prepare_images(data: dict, device: torch.device) -> dict:
    """uint8 (N, 28, 28) -> float (N, 1, 28, 28) in [0, 1] on ``device``."""
    def img(x):
        return (x.to(torch.float32) / 255.0).unsqueeze(1).contiguous().to(device)

    return {"train_x": img(data["train_x"]), "train_y": data["train_y"].to(device),
            "test_x": img(data["test_x"]), "test_y": data["test_y"].to(device),
            "meta": data["meta"]}


def cross_entropy(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(output, target)


def n_correct_argmax(output: torch.Tensor, target: torch.Tensor) -> int:
    return int((output.argmax(dim=1) == target).sum())


def build_lenet5(spec: dict, cfg: dict, meta: dict) -> LeNet5:
    """``build_model`` of the LeNet-5 experiments (``lenet``, ``cnn``, ``cnn_fashion``,
    ``feedback``, ``feedback_fashion``).

    A configuration with ``scope: feedback`` (a layer feedback rule, ``freegrad.feedback``)
    gets feedback layers: every Conv2d and Linear is converted (``fg.convert(feedback=True)``),
    as biotorch converts every layer of its LeNet. Weights in channels_last: oneDNN's
    convolutions on the CPU run about 1.15x faster with it (benchmarks/bench_epoch.py), and
    the activations follow that layout."""
    model = LeNet5(cfg, n_classes=meta["classes"])
    if cfg.get("scope") == "feedback":
        fg.convert(model, feedback=True)
    return model.to(memory_format=torch.channels_last)


# --- DIGITS (the MLP experiments) ----------------------------------------------------------

DIGITS_TEST_SIZE, DIGITS_SPLIT_SEED = 0.2, 0  # the paper's 80/20 split, random_state 0


def prepare_digits(data: dict, device: torch.device) -> dict:
    """Pixels / 16, flattened to 64; scikit-learn's train_test_split(0.2, random_state=0)."""
    from sklearn.model_selection import train_test_split

    x = data["x"].reshape(len(data["x"]), -1).to(torch.float32) / 16.0
    train, test = train_test_split(torch.arange(len(x)).numpy(), test_size=DIGITS_TEST_SIZE,
                                   random_state=DIGITS_SPLIT_SEED)
    train, test = torch.as_tensor(train), torch.as_tensor(test)
    return {"train_x": x[train].to(device), "train_y": data["y"][train].to(device),
            "test_x": x[test].to(device), "test_y": data["y"][test].to(device),
            "meta": {**data["meta"], "split": f"train_test_split(test_size={DIGITS_TEST_SIZE}, "
                                              f"random_state={DIGITS_SPLIT_SEED})"}}


def build_mlp(spec: dict, cfg: dict, meta: dict) -> nn.Sequential:
    """``build_model`` of the DIGITS experiments (``mlp``, ``mlp_sweep``)."""
    return mlp(cfg, n_in=64, hidden=spec["model"].get("hidden", 64), n_out=meta["classes"])
