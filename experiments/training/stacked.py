"""Seeds of one configuration stacked into one wide model: one step trains them all.

Small models (the single unit, the MLP, the binary units) spend their epoch on per-step
Python and dispatch overhead, not arithmetic.  Here the S seeds' models are stacked into one
"wide" model: every ``nn.Linear`` becomes a ``StackedLinear`` holding the S weight matrices
as one (S, out, in) tensor (a batched matmul, ``torch.baddbmm``), and the elementwise
freegrad activations run unchanged on (S, batch, features) tensors.  Each seed gets its own
batch, in its own order; the loss is the sum of the S per-seed losses, so one backward gives
every seed exactly its own gradient (the seeds share no parameter), and ``torch.optim.SGD``,
elementwise, updates each seed as it would alone.  (``torch.func.vmap`` over
``functional_call`` gave the same numbers but its per-step overhead ate the gain: 1.0-1.2x.)

The training itself is ``experiments.training.loop`` (``fit_seeds``: the same epoch, evaluation and
divergence code as one seed).  Each seed keeps what it would get alone: its initialisation
(``torch.manual_seed(seed)`` then ``build_model``), its batch order (a generator seeded with
``seed``), its metrics per epoch; results equal one-seed-at-a-time to float rounding
(``tests/pipeline/test_stacked.py``) and are deterministic run to run.

Used when an experiment sets ``stack_seeds: true`` and ``eligible`` allows it: a model made
of ``nn.Linear`` and ``fg.Activation`` only (``suc``, ``mlp``, ``mlp_sweep``, ``bnn``),
SGD, no diagnostics, no compile, and a deterministic rule with fixed parameters (stochastic
rules draw random numbers per seed: one draw for the wide tensor would not be the draws of S
separate runs; a scheduled parameter trains one seed at a time).
Otherwise the loop trains one seed at a time.  A seed whose loss turns NaN makes the
configuration fall back to one seed at a time, which reports the divergence.
"""

from __future__ import annotations

import freegrad as fg
import torch
from torch import nn

from experiments.training import binding


def eligible(module, spec: dict, cfg: dict, meta: dict) -> str | None:
    """None if ``cfg`` can train stacked; else why not."""
    if spec.get("optimizer", "sgd") != "sgd":
        return f"optimizer {spec['optimizer']!r} (stacked training implements SGD only)"
    if spec.get("diagnostics"):
        return "gradient diagnostics are measured one seed at a time"
    if spec.get("compile"):
        return "compile is for one seed at a time"
    if binding.is_stochastic(cfg):
        return f"rule {cfg['backward']!r} is stochastic"
    if binding.scheduled(cfg):
        return (f"rule parameter(s) {binding.scheduled(cfg)} follow a schedule (stacked "
                "training is checked equal to one seed at a time for fixed parameters only)")
    model = module.build_model(spec, cfg, meta)
    if not isinstance(model, nn.Sequential) or not all(
            isinstance(m, (nn.Linear, fg.Activation)) for m in model):
        return "the model is not a sequence of nn.Linear and fg.Activation"
    return None


class StackedLinear(nn.Module):
    """S independent ``nn.Linear`` layers applied to (S, batch, in) -> (S, batch, out)."""

    def __init__(self, layers: list[nn.Linear]):
        super().__init__()
        self.weight = nn.Parameter(torch.stack([m.weight.detach() for m in layers]))
        self.bias = nn.Parameter(torch.stack([m.bias.detach() for m in layers]).unsqueeze(1))

    def forward(self, x):
        return torch.baddbmm(self.bias, x, self.weight.transpose(1, 2))


def stack(models: list[nn.Sequential]) -> nn.Sequential:
    return nn.Sequential(*[StackedLinear([m[i] for m in models])
                           if isinstance(layer, nn.Linear) else layer
                           for i, layer in enumerate(models[0])])
