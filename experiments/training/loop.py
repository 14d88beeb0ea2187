"""The training core: one epoch loop, evaluation and divergence check, for one seed or for
several seeds stacked into one wide model (``experiments.training.stacked``).

``fit`` trains one (configuration, seed); ``fit_seeds`` trains a configuration's seeds
together.  Both run ``_fit``: the same initialisation (``torch.manual_seed(seed)`` then the
task's ``build_model``), batch order (a generator seeded with the seed), epoch, evaluation
and divergence check; the only differences are the model (one, or the seeds' models
stacked) and that a stacked step sums the seeds' losses (they share no parameter, so each
gets exactly its own gradient).  Rows: one per epoch, epoch 0 the initial evaluation,
with ``train_loss, train_acc, test_loss, test_acc, seconds``.

A configuration may override ``batch_size`` and ``lr`` (``setting``).  The rule is bound
when the forward runs: one ``binding.rule_context`` block covers the whole run.  A rule
parameter that follows a schedule advances one step per optimiser step (the block's clock
attached to the optimiser); its rows then also carry the values in force at the end of each
epoch, ``rule/<param>`` (``binding.values_in_force``; the curves files keep their columns).
"""

from __future__ import annotations

import math
import time

import torch

from experiments.training import binding, stacked


class Diverged(RuntimeError):
    """The loss became NaN or infinite: the run stops (MLflow FAILED) and is reported."""

    def __init__(self, epoch: int, step: int, loss: float, rows: list):
        super().__init__(f"loss {loss} at epoch {epoch}, step {step}")
        self.epoch, self.step, self.loss, self.rows = epoch, step, loss, rows


def setting(spec: dict, cfg: dict, key: str):
    """A configuration's own ``batch_size`` / ``lr`` if it sets one, else the experiment's."""
    return cfg.get(key, spec[key])


def make_optimizer(spec: dict, model: torch.nn.Module, lr: float | None = None
                   ) -> torch.optim.Optimizer:
    lr = spec["lr"] if lr is None else lr
    if spec["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=spec["weight_decay"])
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=spec["momentum"],
                           weight_decay=spec["weight_decay"])


class Seeds:
    """The seeds a model trains: one alone (``stacked`` False) or S stacked, whose outputs,
    targets and batch orders carry a leading seed dimension."""

    def __init__(self, seeds: list[int], stacked: bool, device):
        self.seeds, self.stacked, self.device = list(seeds), stacked, device
        self.gens = [torch.Generator().manual_seed(s) for s in self.seeds]  # on CPU

    def __len__(self) -> int:
        return len(self.seeds)

    def order(self, n: int) -> torch.Tensor:
        """Each seed's batch order for one epoch: (n,) alone, (S, n) stacked."""
        if not self.stacked:
            return torch.randperm(n, generator=self.gens[0]).to(self.device)
        return torch.stack([torch.randperm(n, generator=g) for g in self.gens]).to(self.device)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The same examples for every seed (evaluation)."""
        return x.expand(len(self), *x.shape) if self.stacked else x

    def of(self, t: torch.Tensor, s: int) -> torch.Tensor:
        return t[s] if self.stacked else t


@torch.no_grad()
def evaluate(task, model, x, y, seeds: Seeds | None = None, batch_size: int = 4096
             ) -> tuple[list[float], list[float]]:
    """Per seed: (loss, accuracy) on (x, y), in chunks of ``batch_size``."""
    model.eval()
    n_seeds = len(seeds) if seeds is not None else 1
    total, correct = [0.0] * n_seeds, [0] * n_seeds
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        out = model(seeds.inputs(xb) if seeds is not None else xb)
        for s in range(n_seeds):
            o = seeds.of(out, s) if seeds is not None else out
            total[s] += float(task.loss_fn(o, yb)) * len(o)
            correct[s] += task.n_correct(o, yb)
    return [t / len(x) for t in total], [c / len(x) for c in correct]


def _losses(task, out, yb, seeds: Seeds, where: tuple) -> tuple[torch.Tensor, list[float]]:
    """(what to backpropagate, each seed's loss); ``Diverged`` on a NaN or infinite loss,
    before it reaches the weights.  ``where``: (epoch, step, rows) for the error."""
    try:
        if seeds.stacked:  # the seeds share nothing: the sum gives each its own gradient
            losses = torch.stack([task.loss_fn(out[s], yb[s]) for s in range(len(seeds))])
            total, values = losses.sum(), losses.detach().tolist()
        else:
            total = task.loss_fn(out, yb)
            values = [float(total.detach())]
    except RuntimeError:  # e.g. binary_cross_entropy refuses a NaN input
        if bool(torch.isfinite(out).all()):
            raise
        raise Diverged(*where[:2], float("nan"), where[2]) from None
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise Diverged(*where[:2], bad[0], where[2])
    return total, values


def _epoch(task, model, opt, data, seeds: Seeds, bs: int, state: dict, diag=None):
    """One pass over the training set; per seed (loss sum, correct count)."""
    x, y = data["train_x"], data["train_y"]
    perm = seeds.order(len(x))
    loss_sum, correct = [0.0] * len(seeds), [0] * len(seeds)
    for i in range(0, len(x), bs):
        idx = perm[..., i : i + bs]
        xb, yb = x[idx], y[idx]
        if diag is not None:
            diag(state["step"], lambda xb=xb, yb=yb: task.loss_fn(model(xb), yb))
        state["step"] += 1
        out = model(xb)
        total, values = _losses(task, out, yb, seeds,
                                (state["epoch"], state["step"], state["rows"]))
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        od = out.detach()
        for s in range(len(seeds)):
            loss_sum[s] += values[s] * idx.shape[-1]
            correct[s] += task.n_correct(seeds.of(od, s), seeds.of(yb, s))
    return loss_sum, correct


def _model(task, spec: dict, cfg: dict, seeds: Seeds, meta: dict, device):
    models = []
    for seed in seeds.seeds:
        torch.manual_seed(seed)
        models.append(task.build_model(spec, cfg, meta))
    model = stacked.stack(models) if seeds.stacked else models[0]
    return model.to(device)


def _rows(epoch: int, train: tuple, test: tuple, seconds: float, block) -> list[dict]:
    """Per seed, the row of ``epoch``; a scheduled rule's values in force at its end
    (``rule/<param>``, ``binding.values_in_force``) follow, for scheduled runs only."""
    return [dict(epoch=epoch, train_loss=train[0][s], train_acc=train[1][s],
                 test_loss=test[0][s], test_acc=test[1][s], seconds=seconds)
            | binding.values_in_force(block)
            for s in range(len(train[0]))]


def _fit(task, spec: dict, cfg: dict, seeds: Seeds, data: dict, device, on_epoch=None,
         diagnostics=None) -> list[list[dict]]:
    """Train ``seeds`` (one, or stacked); per seed, one row per epoch (0 = initial)."""
    model = _model(task, spec, cfg, seeds, data["meta"], device)
    opt = make_optimizer(spec, model, setting(spec, cfg, "lr"))
    if spec.get("compile"):  # optional, off by default: see benchmarks/bench_epoch.py
        model = torch.compile(model)
    block = binding.rule_context(cfg, seeds.seeds[0])  # stacked: deterministic rules only
    binding.count_steps(block, opt)  # scheduled parameters: one step per opt.step()
    clock = getattr(block, "clock", None)  # None: the true derivative, no block
    diag = diagnostics(model, clock) if diagnostics is not None else None
    ev = seeds if seeds.stacked else None
    x, y, tx, ty = data["train_x"], data["train_y"], data["test_x"], data["test_y"]
    rows = [[r] for r in _rows(0, evaluate(task, model, x, y, ev),
                               evaluate(task, model, tx, ty, ev), 0.0, block)]
    state = {"step": 0, "epoch": 0, "rows": rows if seeds.stacked else rows[0]}
    with block:
        for epoch in range(1, spec["epochs"] + 1):
            t0 = time.perf_counter()
            model.train()
            state["epoch"] = epoch
            loss_sum, correct = _epoch(task, model, opt, data, seeds,
                                       setting(spec, cfg, "batch_size"), state, diag)
            n = len(x)
            test = evaluate(task, model, tx, ty, ev)
            # stacked: the epoch's time is shared by its seeds
            seconds = (time.perf_counter() - t0) / len(seeds)
            for s, row in enumerate(_rows(epoch, ([v / n for v in loss_sum],
                                                  [c / n for c in correct]), test, seconds,
                                                 block)):
                rows[s].append(row)
            if on_epoch is not None:
                on_epoch(rows[0][-1])
    return rows


def _task_trainer(task, spec: dict, cfg: dict, device, engine: str):
    """The task's own trainer for this run (``task.fast_fit``), or None: ``engine`` is
    "autograd", the task has none, the run is not on the CPU or is compiled, or the trainer
    does not support its configuration (``task.fast_fit_supports``)."""
    if engine not in ("auto", "autograd"):
        raise ValueError(f"engine {engine!r}: 'auto' or 'autograd'")
    fast = getattr(task, "fast_fit", None)
    if (engine == "autograd" or fast is None or spec.get("compile")
            or torch.device(device).type != "cpu" or spec.get("optimizer", "sgd") != "sgd"):
        return None
    return fast if task.fast_fit_supports(cfg) else None


def fit(task, spec: dict, cfg: dict, seed: int, data: dict, device, on_epoch=None,
        diagnostics=None, engine: str = "auto") -> list[dict]:
    """Train one (configuration, seed); return one row per epoch (epoch 0 = initial).

    ``on_epoch(row)`` is called after every epoch.  ``diagnostics(model, clock)``, if given,
    (``clock``: the rule block's, that scheduled parameters read) returns a
    ``GradientDiagnostics`` called before every optimiser step with the batch
    loss (it measures every ``every`` steps, against the true derivative).  Raises
    ``Diverged`` with the rows so far.  ``engine``: "auto" trains with the task's own
    trainer where it has one for this run (LeNet-5: ``tasks.wide_lenet``, the same run to
    float rounding, about twice as fast), "autograd" always with the loop below."""
    fast = _task_trainer(task, spec, cfg, device, engine)
    if fast is not None:
        rows, diverged = fast(spec, cfg, seed, data, on_epoch, diagnostics)
        if diverged is not None:
            raise Diverged(*diverged, rows)
        return rows
    return _fit(task, spec, cfg, Seeds([seed], False, device), data, device, on_epoch,
                diagnostics)[0]


def fit_seeds(task, spec: dict, cfg: dict, seeds: list[int], data: dict, device
              ) -> list[list[dict]]:
    """``fit`` for every seed of ``seeds`` at once, stacked (``stacked.eligible`` must allow
    it); one list of rows per seed.  Raises ``Diverged`` if any seed's loss turns NaN."""
    return _fit(task, spec, cfg, Seeds(seeds, True, device), data, device)
