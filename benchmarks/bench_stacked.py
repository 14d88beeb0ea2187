"""Seeds trained stacked against one seed at a time.

``--lenet`` (LeNet-5 / MNIST, measurement only: the pipeline does not stack LeNet): one epoch
of S seeds stacked into one wide model against S single-seed epochs, every hidden activation
``fg.Activation("Logistic")`` under ``fg.use("rectangular", a=-0.5, b=0.5)`` as the ``lenet``
experiment's rectangular configuration, SGD (LR 0.01, momentum 0.9), batch size 256. Two ways
to stack:

* ``grouped``: the S first convolutions as one ``Conv2d(S, 6S, 5, groups=S)`` (seed s's batch
  in input channel s), the second as ``Conv2d(6S, 16S, 5, groups=S)``, the fully connected
  layers as batched matmuls (``torch.baddbmm`` over (S, out, in) weights); freegrad's
  activations run unchanged on the wide tensors (so its compiled kernels apply);
* ``vmap``: ``torch.func.vmap`` of ``torch.func.functional_call`` over the stacked parameters
  (the activations then take their PyTorch-ops path, as under any torch.func transform).

Each seed keeps its own initialisation and its own batch order; the loss is the sum of the
per-seed losses, so each seed gets its own gradient, and SGD (elementwise) updates each as it
would alone. Variants alternate over ``--rounds`` rounds; the speed-up is the median over
rounds of (S single-seed epochs / one stacked epoch) in the same round.

Without ``--lenet``: the pipeline's stacked training (``experiments.training.stacked``) of the small
experiments.

    FREEGRAD_DATA_MIRROR=/path/to/datasets python benchmarks/bench_stacked.py --lenet
        [--seeds 3] [--rounds 2] [--train-limit N]
    python benchmarks/bench_stacked.py [--rounds 3] [--epochs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

RULE = ("rectangular", {"a": -0.5, "b": 0.5})
LR, MOMENTUM, BATCH = 0.01, 0.9, 256


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


# --- LeNet-5, S seeds stacked -----------------------------------------------------------------


class GroupedLeNet5(nn.Module):
    """S LeNet-5s as one: grouped convolutions, batched matmuls, shared elementwise layers."""

    def __init__(self, models: list[nn.Sequential], act):
        super().__init__()
        s = self.seeds = len(models)
        conv1 = nn.Conv2d(s, 6 * s, 5, padding=2, groups=s)
        conv2 = nn.Conv2d(6 * s, 16 * s, 5, groups=s)
        with torch.no_grad():
            for conv, i in ((conv1, 0), (conv2, 3)):
                conv.weight.copy_(torch.cat([m[i].weight for m in models]))
                conv.bias.copy_(torch.cat([m[i].bias for m in models]))
        self.features = nn.Sequential(conv1, act(), nn.AvgPool2d(2), conv2, act(), nn.AvgPool2d(2))
        self.fc = nn.ParameterList()
        for i in (7, 9, 11):
            self.fc.append(nn.Parameter(torch.stack([m[i].weight.detach().t() for m in models])))
            self.fc.append(
                nn.Parameter(torch.stack([m[i].bias.detach() for m in models]).unsqueeze(1))
            )
        self.acts = nn.ModuleList([act(), act()])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, S, 28, 28) -> (S, batch, 10): seed s sees channel s."""
        h = self.features(x)  # (batch, 16 S, 5, 5)
        h = h.reshape(h.shape[0], self.seeds, 400).transpose(0, 1)  # (S, batch, 400)
        for k in range(3):
            h = torch.baddbmm(self.fc[2 * k + 1], h, self.fc[2 * k])
            if k < 2:
                h = self.acts[k](h)
        return h


def _batches(n: int, seeds: list[int]):
    perms = [torch.randperm(n, generator=torch.Generator().manual_seed(s)) for s in seeds]
    for i in range(0, n, BATCH):
        yield [p[i:i + BATCH] for p in perms]


def single_epoch(lenet, x, y, tx, ty, seed: int) -> float:
    import freegrad as fg

    torch.manual_seed(seed)
    model = lenet(lambda: fg.Activation("Logistic")).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    t0 = time.perf_counter()
    with fg.use(*RULE, scope="activations"):
        model.train()
        for (idx,) in _batches(len(x), [seed]):
            _sgd_step(opt, F.cross_entropy(model(x[idx]), y[idx]))
        _evaluate(model, tx, ty, lambda xb: xb, dim=1)
    return time.perf_counter() - t0


def _sgd_step(opt, loss) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _evaluate(model, tx, ty, widen, dim: int) -> None:
    """The test pass of an epoch (counted, as the pipeline's evaluation counts it)."""
    model.eval()
    with torch.no_grad():
        for i in range(0, len(tx), 4096):
            out = model(widen(tx[i:i + 4096]))
            int((out.argmax(dim) == ty[i:i + 4096]).sum())


def _seed_models(lenet, seeds, act):
    models = []
    for s in seeds:
        torch.manual_seed(s)
        models.append(lenet(act))
    return models


def grouped_epoch(lenet, x, y, tx, ty, seeds: list[int]) -> float:
    import freegrad as fg

    act = lambda: fg.Activation("Logistic")  # noqa: E731
    model = GroupedLeNet5(_seed_models(lenet, seeds, act), act).to(
        memory_format=torch.channels_last
    )
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    s = len(seeds)
    t0 = time.perf_counter()
    with fg.use(*RULE, scope="activations"):
        model.train()
        for idxs in _batches(len(x), seeds):
            xb = torch.cat([x[idx] for idx in idxs], dim=1).contiguous(
                memory_format=torch.channels_last
            )
            yb = torch.stack([y[idx] for idx in idxs])  # (S, batch)
            out = model(xb)
            # the sum of the S per-seed mean losses
            _sgd_step(opt, F.cross_entropy(out.reshape(-1, 10), yb.reshape(-1)) * s)
        _evaluate(model, tx, ty, lambda xb: xb.expand(-1, s, -1, -1), dim=2)
    return time.perf_counter() - t0


def vmap_epoch(lenet, x, y, tx, ty, seeds: list[int]) -> float:
    import freegrad as fg
    from torch.func import functional_call, stack_module_state, vmap

    act = lambda: fg.Activation("Logistic")  # noqa: E731
    models = _seed_models(lenet, seeds, act)
    params, buffers = stack_module_state(models)
    base = lenet(act).to("meta")
    leaves = list(params.values())
    opt = torch.optim.SGD(leaves, lr=LR, momentum=MOMENTUM)

    def one(p, b, xb):
        return functional_call(base, (p, b), (xb,))

    wide = vmap(one)
    s = len(seeds)
    t0 = time.perf_counter()
    with fg.use(*RULE, scope="activations"):
        for idxs in _batches(len(x), seeds):
            xb = torch.stack([x[idx] for idx in idxs])  # (S, batch, 1, 28, 28)
            yb = torch.stack([y[idx] for idx in idxs])
            out = wide(params, buffers, xb)
            loss = F.cross_entropy(out.reshape(-1, 10), yb.reshape(-1)) * s
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        with torch.no_grad():
            for i in range(0, len(tx), 4096):
                out = wide(params, buffers, tx[i:i + 4096].expand(s, -1, -1, -1, -1))
                int((out.argmax(2) == ty[i:i + 4096]).sum())
    return time.perf_counter() - t0


def check_equivalence(lenet, x, y, seeds: list[int]) -> float:
    """Largest |difference| between the grouped model's and the separate models' outputs and
    first-step gradients (same initial weights): float rounding only."""
    import freegrad as fg

    act = lambda: fg.Activation("Logistic")  # noqa: E731
    models = _seed_models(lenet, seeds, act)
    wide = GroupedLeNet5(models, act)
    idxs = next(iter(_batches(len(x), seeds)))
    with fg.use(*RULE, scope="activations"):
        out = wide(torch.cat([x[idx] for idx in idxs], dim=1))
        targets = torch.stack([y[idx] for idx in idxs]).reshape(-1)
        loss = F.cross_entropy(out.reshape(-1, 10), targets) * len(seeds)
        loss.backward()
        worst = 0.0
        for k, (m, idx) in enumerate(zip(models, idxs, strict=True)):
            o = m(x[idx])
            F.cross_entropy(o, y[idx]).backward()
            worst = max(worst, (o - out[k]).abs().max().item(),
                        (m[0].weight.grad - wide.features[0].weight.grad[6 * k:6 * k + 6])
                        .abs().max().item(),
                        (m[11].weight.grad.t() - wide.fc[4].grad[k]).abs().max().item())
    return worst


def lenet_main(args) -> None:
    from bench_epoch import LeNet5, mnist
    from freegrad import kernels

    print(f"compiled mask kernels: {kernels.ensure_built()}")
    seeds = list(range(args.seeds))
    with tempfile.TemporaryDirectory() as tmp:
        x, y, tx, ty, _, _ = mnist(Path(tmp), args.train_limit)
    print(f"LeNet-5 / MNIST, {len(x)} train + {len(tx)} test images, rectangular, batch {BATCH}, "
          f"{len(seeds)} seeds; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"{_load()}")
    print("grouped vs separate, first step: max |difference| "
          f"{check_equivalence(LeNet5, x, y, seeds):.2e}")
    variants = {
        "one at a time": lambda *d: sum(single_epoch(LeNet5, *d, s) for s in seeds),
        "grouped": lambda *d: grouped_epoch(LeNet5, *d, seeds),
        "vmap": lambda *d: vmap_epoch(LeNet5, *d, seeds),
    }
    names = [n for n in variants if n == "one at a time" or n in args.ways]
    for name in names:  # warm-up on 2048 images (first-call initialisation), not timed
        variants[name](x[:2048], y[:2048], tx[:2048], ty[:2048])
    times = {name: [] for name in names}
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(variants[name](x, y, tx, ty))
    print(f"{'variant':<16}{'s (S seeds, 1 epoch)':>22}{'speed-up':>10}   {_load()}")
    base = times["one at a time"]
    for name in names:
        ratio = statistics.median(b / t for b, t in zip(base, times[name], strict=True))
        print(f"{name:<16}{statistics.median(times[name]):>21.2f}s{ratio:>9.2f}x")


# --- the pipeline's stacked small experiments -------------------------------------------------


def pipeline_main(args) -> None:
    from experiments import config as P
    from experiments.results import datasets
    from experiments.tasks import binary_unit as bnn
    from experiments.tasks import digits_mlp as mlp
    from experiments.tasks import single_unit as suc
    from experiments.training import inputs, loop

    cases = [("suc", suc, "constant"), ("mlp", mlp, "constant"),
             ("mlp_sweep", mlp, "bs16_lr0.05_constant"), ("bnn", bnn, "step_rectangular_d32")]
    torch.set_num_threads(1)
    params = P.load()
    print(f"{'experiment / configuration':<42}{'seeds':>6}{'one at a time':>15}{'stacked':>10}"
          f"{'speed-up':>10}")
    for name, module, cname in cases:
        spec = P.resolve(params, name, "full")
        spec["epochs"] = args.epochs
        cfg = spec["configs"][cname]
        prepared = module.prepare(datasets.load(spec["dataset"]), "cpu")
        data = inputs.configuration_data(P.Experiment(name, "full", spec), prepared, cname)
        seeds = spec["seeds"]
        one, st = [], []
        for r in range(args.rounds):
            for variant in ((0, 1) if r % 2 == 0 else (1, 0)):
                t0 = time.perf_counter()
                if variant == 0:
                    for s in seeds:
                        loop.fit(module, spec, cfg, s, data, "cpu")
                    one.append(time.perf_counter() - t0)
                else:
                    loop.fit_seeds(module, spec, cfg, seeds, data, "cpu")
                    st.append(time.perf_counter() - t0)
        ratio = statistics.median(a / b for a, b in zip(one, st, strict=True))
        print(f"{name + ' / ' + cname:<42}{len(seeds):>6}{statistics.median(one):>14.2f}s"
              f"{statistics.median(st):>9.2f}s{ratio:>9.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lenet", action="store_true", help="LeNet-5 stacked seeds (measurement)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--ways", nargs="+", default=["grouped", "vmap"],
                        choices=["grouped", "vmap"])
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None, help="default: 2 with --lenet, else 3")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    if args.lenet:
        args.rounds = args.rounds or 2
        lenet_main(args)
    else:
        args.rounds = args.rounds or 3
        pipeline_main(args)


if __name__ == "__main__":
    main()
