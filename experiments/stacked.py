"""Train the seeds of one configuration together: one wide model, one step for all seeds.

Small models (the single unit, the MLP, the binary units) spend their epoch on per-step
Python and dispatch overhead, not arithmetic.  Here the S seeds' models are stacked into one
"wide" model: every ``nn.Linear`` becomes a ``StackedLinear`` holding the S weight matrices
as one (S, out, in) tensor (a batched matmul, ``torch.baddbmm``), and the elementwise
freegrad activations run unchanged on (S, batch, features) tensors.  Each seed gets its own
batch, in its own order; the loss is the sum of the S per-seed losses, so one backward gives
every seed exactly its own gradient (the seeds share no parameter), and ``torch.optim.SGD``,
elementwise, updates each seed as it would alone.  (``torch.func.vmap`` over
``functional_call`` gave the same numbers but its per-step overhead ate the gain: 1.0-1.2x.)

Each seed keeps what ``train.fit`` gives it: its initialisation (``torch.manual_seed(seed)``
then ``build_model``), its batch order (a generator seeded with ``seed``), its metrics per
epoch; results equal one-seed-at-a-time to float rounding (``tests/pipeline/test_stacked.py``)
and are deterministic run to run.

Used when an experiment sets ``stack_seeds: true`` and ``eligible`` allows it: a model made
of ``nn.Linear`` and ``fg.Activation`` only (``suc``, ``mlp``, ``mlp_sweep``, ``bnn``),
SGD, no diagnostics, no compile, and a deterministic rule (stochastic rules draw random
numbers per seed: one draw for the wide tensor would not be the draws of S separate runs).
Otherwise the loop trains one seed at a time.  A seed whose loss turns NaN makes the
configuration fall back to one seed at a time, which reports the divergence.
"""

from __future__ import annotations

import math
import time

import freegrad as fg
import torch
from torch import nn

from experiments import train


def eligible(module, spec: dict, cfg: dict, meta: dict) -> str | None:
    """None if ``cfg`` can train stacked; else why not."""
    if spec.get("optimizer", "sgd") != "sgd":
        return f"optimizer {spec['optimizer']!r} (stacked training implements SGD only)"
    if spec.get("diagnostics"):
        return "gradient diagnostics are measured one seed at a time"
    if spec.get("compile"):
        return "compile is for one seed at a time"
    if not train.is_true_derivative(cfg) and fg.get(cfg["backward"]).stochastic:
        return f"rule {cfg['backward']!r} is stochastic"
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


class SeedDiverged(RuntimeError):
    pass


def _evaluate(module, model, x, y, n_seeds, batch_size=4096):
    """Per seed: (loss, accuracy) on (x, y), chunked as ``train.evaluate`` does."""
    total, correct = [0.0] * n_seeds, [0] * n_seeds
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            out = model(xb.expand(n_seeds, *xb.shape))
            for s in range(n_seeds):
                total[s] += float(module.loss_fn(out[s], yb)) * len(yb)
                correct[s] += module.n_correct(out[s], yb)
    return [t / len(x) for t in total], [c / len(x) for c in correct]


def fit_seeds(module, spec: dict, cfg: dict, seeds: list[int], data: dict, device
              ) -> list[list[dict]]:
    """``train.fit`` for every seed of ``seeds`` at once; one list of rows per seed."""
    models = []
    for seed in seeds:
        torch.manual_seed(seed)
        models.append(module.build_model(spec, cfg, data["meta"]))
    model = stack(models).to(device)
    gens = [torch.Generator().manual_seed(seed) for seed in seeds]
    opt = train.make_optimizer(spec, model, train.setting(spec, cfg, "lr"))
    x, y = data["train_x"], data["train_y"]
    n, bs, S = len(x), train.setting(spec, cfg, "batch_size"), len(seeds)

    train_loss, train_acc = _evaluate(module, model, x, y, S)
    test_loss, test_acc = _evaluate(module, model, data["test_x"], data["test_y"], S)
    rows = [[dict(epoch=0, train_loss=train_loss[s], train_acc=train_acc[s],
                  test_loss=test_loss[s], test_acc=test_acc[s], seconds=0.0)]
            for s in range(S)]
    with train.rule_context(cfg, seeds[0]):  # deterministic rules: the seed is unused
        for epoch in range(1, spec["epochs"] + 1):
            t0 = time.perf_counter()
            perms = torch.stack([torch.randperm(n, generator=g) for g in gens]).to(device)
            loss_sum, correct = [0.0] * S, [0] * S
            for i in range(0, n, bs):
                idx = perms[:, i:i + bs]                           # (S, B): each seed's batch
                xb, yb = x[idx], y[idx]                            # (S, B, ...)
                out = model(xb)
                losses = torch.stack([module.loss_fn(out[s], yb[s]) for s in range(S)])
                values = losses.detach().tolist()
                if not all(math.isfinite(v) for v in values):
                    raise SeedDiverged(f"epoch {epoch}")
                opt.zero_grad(set_to_none=True)
                losses.sum().backward()  # seeds share nothing: each gets its own gradient
                opt.step()
                od = out.detach()
                for s in range(S):
                    loss_sum[s] += values[s] * idx.shape[1]
                    correct[s] += module.n_correct(od[s], yb[s])
            test_loss, test_acc = _evaluate(module, model, data["test_x"], data["test_y"], S)
            seconds = (time.perf_counter() - t0) / S  # the stacked epoch, shared by its seeds
            for s in range(S):
                rows[s].append(dict(epoch=epoch, train_loss=loss_sum[s] / n,
                                    train_acc=correct[s] / n, test_loss=test_loss[s],
                                    test_acc=test_acc[s], seconds=seconds))
    return rows
