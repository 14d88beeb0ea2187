"""A member's parameters as the C++ step keeps them: one flat vector, each layer (out, in + 1)
with the bias last, in ``models.LeNet5``'s order."""

from __future__ import annotations

import math

import torch
from torch import nn

N_PARAMS_BODY = 6 * 26 + 16 * 151 + 120 * 401 + 84 * 121  # before fc3's (n_classes, 85)


def _layers(n_classes: int) -> list[nn.Module]:
    """The parametrised layers of models.LeNet5, constructed in its order (its activations,
    pools and flatten draw no random numbers)."""
    return [nn.Conv2d(1, 6, 5, padding=2), nn.Conv2d(6, 16, 5), nn.Linear(400, 120),
            nn.Linear(120, 84), nn.Linear(84, n_classes)]


def pack(layers) -> torch.Tensor:
    """The C++ step's parameter vector: each layer (out, in + 1), the bias last."""
    parts = [torch.cat([m.weight.detach().reshape(m.weight.shape[0], -1),
                        m.bias.detach().reshape(-1, 1)], 1).reshape(-1) for m in layers]
    return torch.cat(parts).to(torch.float32).contiguous()


# models.LeNet5's Sequential indices of its parametrised layers
STATE_KEYS = ("0", "3", "7", "9", "11")
_LAYER_SHAPES = ((6, 1, 5, 5), (16, 6, 5, 5), (120, 400), (84, 120))


def state_dict(flat: torch.Tensor) -> dict[str, torch.Tensor]:
    """``flat`` as a ``models.LeNet5`` state dict (``model.load_state_dict(...)``)."""
    n_classes = (flat.numel() - N_PARAMS_BODY) // 85
    shapes = (*_LAYER_SHAPES, (n_classes, 84))
    out, at = {}, 0
    for key, shape in zip(STATE_KEYS, shapes, strict=True):
        rows, cols = shape[0], math.prod(shape[1:]) + 1
        block = flat[at:at + rows * cols].reshape(rows, cols)
        out[f"{key}.weight"] = block[:, :-1].reshape(shape).clone()
        out[f"{key}.bias"] = block[:, -1].clone()
        at += rows * cols
    return out


def init_params(seed: int, n_classes: int = 10) -> torch.Tensor:
    """``torch.manual_seed(seed); LeNet5(cfg)``'s parameters, packed (global RNG restored)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return pack(_layers(n_classes))
