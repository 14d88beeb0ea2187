"""LeNet-5 grids: image-epochs per second per core, old path against the wide engine, and the
distance to the core's limit (issue 23).

For each task (``lenet``: batch 256, SGD lr 0.01 momentum 0.9; ``cnn``: batch 64, SGD lr 0.01
no momentum; both from params.yaml, profile full) the members are the task's grid
configurations at its batch size (each configuration's own lr), seed 0; a configuration whose
loss turns NaN within the benchmark's epoch is left out (said in the output: it stops there on
both paths). Each round trains one epoch of ``--train-images`` MNIST images (plus the
evaluation of ``--train-images / 6`` test images, the pipeline's 60,000 : 10,000) both ways,
one thread (``torch.set_num_threads(1)``):

* old: ``experiments.loop.fit`` one configuration after another, the training path of commit
  32ce056 (nn modules, freegrad's activations and rule block, ``torch.optim.SGD``);
* new: ``experiments.tasks.wide_lenet.train`` of all configurations at once.

The time of a run is its epoch's (training pass and test evaluation, as the rows' ``seconds``
measure it), not the initial evaluation of epoch 0, in this thread's CPU time (the machine is
shared: CPU time leaves out the other processes' turns on the core; the wall-clock ratio is
printed beside it). Rounds interleave the two paths (their order alternating); the ratio is
the median over rounds of (old seconds / new seconds) in the same round. Every round also
times a single-thread 1024x1024 sgemm (``torch.mm``, best of 10, CPU time): the core's GEMM
speed now, printed as the limit.

FLOPs counted per training image: 2 x (forward MACs + weight-gradient MACs + input-gradient
MACs of every layer but the first) = 2 x (416,520 + 416,520 + 298,920) = 2,263,920; per
evaluated image 2 x 416,520 = 833,040 (bias adds, activations, pooling and the loss not
counted). The limit in image-epochs/s is sgemm GFLOP/s / FLOPs per image-epoch.

    python benchmarks/bench_lenet_throughput.py [--tasks lenet cnn] [--rounds 3]
        [--train-images 4096] [--configs NAME ...]

Data: data/processed/mnist.pt (``python -m experiments.data``); without it, random images of
MNIST's shape (said in the output).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments import config as P  # noqa: E402
from experiments.tasks import lenet5, wide_lenet  # noqa: E402
from experiments.training import loop  # noqa: E402

# MACs of one image: conv1 6*784*25, conv2 16*100*150, fc 400*120, 120*84, 84*10
FORWARD_MACS = 6 * 784 * 25 + 16 * 100 * 150 + 400 * 120 + 120 * 84 + 84 * 10
INPUT_GRAD_MACS = FORWARD_MACS - 6 * 784 * 25  # conv1 needs no input gradient
TRAIN_FLOP = 2 * (FORWARD_MACS + FORWARD_MACS + INPUT_GRAD_MACS)
EVAL_FLOP = 2 * FORWARD_MACS


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


def sgemm_gflops(n: int = 1024, reps: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    c = torch.empty(n, n)
    torch.mm(a, b, out=c)
    best = float("inf")
    for _ in range(reps):  # thread CPU time, as the paths are timed
        t = time.thread_time()
        torch.mm(a, b, out=c)
        best = min(best, time.thread_time() - t)
    return 2 * n**3 / best / 1e9


def mnist(n_train: int, n_test: int) -> tuple[dict, str]:
    path = ROOT / "data" / "processed" / "mnist.pt"
    if path.is_file():
        from experiments.results import datasets

        data = lenet5.prepare(datasets.load("mnist"), torch.device("cpu"))
        what = f"MNIST ({path.relative_to(ROOT)})"
    else:
        g = torch.Generator().manual_seed(0)
        data = {"train_x": torch.rand(n_train, 1, 28, 28, generator=g),
                "train_y": torch.randint(0, 10, (n_train,), generator=g),
                "test_x": torch.rand(n_test, 1, 28, 28, generator=g),
                "test_y": torch.randint(0, 10, (n_test,), generator=g),
                "meta": {"classes": 10}}
        what = "random images of MNIST's shape (no data/processed/mnist.pt)"
    return ({"train_x": data["train_x"][:n_train], "train_y": data["train_y"][:n_train],
             "test_x": data["test_x"][:n_test], "test_y": data["test_y"][:n_test],
             "meta": data["meta"]}, what)


def task_configs(name: str, select: list[str] | None) -> tuple[dict, dict]:
    spec = P.resolve(P.load(), name, "full")
    configs = {k: c for k, c in spec["configs"].items()
               if c.get("batch_size") in (None, spec["batch_size"])
               and (not select or k in select)}
    return spec, configs


class Clock:
    """Stands in for the ``time`` module of experiments.loop and wide_lenet while they are
    timed: their ``time.perf_counter()`` (read at an epoch's start and end) returns this
    thread's CPU time, and each reading's wall time is kept, so an epoch has both."""

    def __init__(self):
        self.marks: list[tuple[float, float]] = []

    def perf_counter(self) -> float:
        wall, cpu = time.perf_counter(), time.thread_time()
        self.marks.append((wall, cpu))
        return cpu

    def __enter__(self):
        self.saved = loop.time, wide_lenet.native.time
        loop.time = wide_lenet.native.time = self
        return self

    def __exit__(self, *exc):
        loop.time, wide_lenet.native.time = self.saved

    def epochs(self) -> tuple[float, float]:
        """(CPU, wall) seconds of the epochs timed: readings in (start, end) pairs."""
        pairs = list(zip(self.marks[::2], self.marks[1::2], strict=True))
        return (sum(e[1] - s[1] for s, e in pairs), sum(e[0] - s[0] for s, e in pairs))


def old_epoch(spec: dict, configs: dict, data: dict) -> tuple[float, float]:
    """(CPU, wall) seconds of one epoch of every configuration, one after another: the path
    at 32ce056 (experiments.loop.fit)."""
    run = dict(spec, epochs=1)
    with Clock() as clock:
        for cfg in configs.values():
            loop.fit(lenet5, run, cfg, 0, data, torch.device("cpu"), engine="autograd")
    return clock.epochs()


def new_epoch(spec: dict, configs: dict, data: dict) -> tuple[float, float]:
    members = [wide_lenet.Member.from_config(cfg, 0, name=k) for k, cfg in configs.items()]
    with Clock() as clock:
        wide_lenet.train(members, data, batch_size=spec["batch_size"], epochs=1, lr=spec["lr"],
                         momentum=spec["momentum"], weight_decay=spec["weight_decay"])
    return clock.epochs()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["lenet", "cnn"], choices=["lenet", "cnn"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train-images", type=int, default=4096)
    parser.add_argument("--configs", nargs="*", default=None,
                        help="only these configurations (default: the task's grid)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    n_train, n_test = args.train_images, max(1, args.train_images // 6)
    data, what = mnist(n_train, n_test)
    print(f"wide_lenet C++ step: {wide_lenet.status()}")  # built before anything is timed
    from freegrad import kernels

    print(f"freegrad kernels: {kernels.ensure_built()}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread; data: {what}; "
          f"{n_train} training + {n_test} test images per epoch; {_load()}")
    print(f"FLOPs per image-epoch: {TRAIN_FLOP:,} training + {EVAL_FLOP:,} x "
          f"{n_test / n_train:.3f} evaluation = {TRAIN_FLOP + EVAL_FLOP * n_test / n_train:,.0f}")
    flop_epoch = TRAIN_FLOP * n_train + EVAL_FLOP * n_test

    summary = []
    for name in args.tasks:
        spec, configs = task_configs(name, args.configs)
        if not configs:
            continue
        small = data
        # untimed: the new path once (its warm-up), to find configurations whose loss turns
        # NaN within this epoch; they stop there on both paths, so they leave the benchmark
        members = [wide_lenet.Member.from_config(cfg, 0, name=c) for c, cfg in configs.items()]
        res = wide_lenet.train(members, small, batch_size=spec["batch_size"], epochs=1,
                               lr=spec["lr"], momentum=spec["momentum"],
                               weight_decay=spec["weight_decay"])
        dropped = [f"{r.member.name} (step {r.diverged.step})" for r in res if r.diverged]
        configs = {c: cfg for (c, cfg), r in zip(configs.items(), res, strict=True)
                   if not r.diverged}
        warm = {**small, "train_x": small["train_x"][:2 * spec["batch_size"]],
                "train_y": small["train_y"][:2 * spec["batch_size"]]}
        old_epoch(spec, dict(list(configs.items())[:2]), warm)  # warm-up, untimed
        k = len(configs)
        if dropped:
            print(f"\n{name}: left out, their loss turns NaN in this epoch: {', '.join(dropped)}")
        print(f"\n{name}: batch {spec['batch_size']}, lr {spec['lr']} (or the configuration's), "
              f"momentum {spec['momentum']}; {k} members: {', '.join(configs)}")
        print(f"{'round':>5} {'old s':>7} {'new s':>7} {'old img-ep/s':>12} "
              f"{'new img-ep/s':>12} {'ratio':>6} {'wall ratio':>10} {'sgemm GF/s':>10}")
        rounds = []
        for r in range(args.rounds):
            order = ("old", "new") if r % 2 == 0 else ("new", "old")
            t = {}
            for which in order:
                t[which] = (old_epoch if which == "old" else new_epoch)(spec, configs, small)
            g = sgemm_gflops()
            rounds.append((t["old"], t["new"], g))
            (oc, ow), (nc, nw) = t["old"], t["new"]
            print(f"{r:>5} {oc:>7.2f} {nc:>7.2f} {k * n_train / oc:>12,.0f} "
                  f"{k * n_train / nc:>12,.0f} {oc / nc:>6.2f} {ow / nw:>10.2f} {g:>10.1f}")
        med = statistics.median
        old_s, new_s = med(r[0][0] for r in rounds), med(r[1][0] for r in rounds)
        ratio = med(r[0][0] / r[1][0] for r in rounds)
        wall_ratio = med(r[0][1] / r[1][1] for r in rounds)
        gemm = med(r[2] for r in rounds)
        old_rate, new_rate = k * n_train / old_s, k * n_train / new_s
        old_gf, new_gf = k * flop_epoch / old_s / 1e9, k * flop_epoch / new_s / 1e9
        limit = gemm * 1e9 / (flop_epoch / n_train)
        print(f"median: old {old_rate:,.0f} image-epochs/s per core ({old_gf:.1f} GFLOP/s, "
              f"{old_gf / gemm:.0%} of sgemm); new {new_rate:,.0f} ({new_gf:.1f} GFLOP/s, "
              f"{new_gf / gemm:.0%} of sgemm); ratio {ratio:.2f}x (wall clock {wall_ratio:.2f}x);"
              f" sgemm {gemm:.1f} GFLOP/s, i.e. at most {limit:,.0f} image-epochs/s")
        summary.append((name, old_rate, new_rate, ratio, wall_ratio, new_gf / gemm))
    print(f"\n{_load()}")
    for name, old_rate, new_rate, ratio, wall_ratio, frac in summary:
        print(f"{name}: {old_rate:,.0f} -> {new_rate:,.0f} image-epochs/s per core, "
              f"{ratio:.2f}x (wall clock {wall_ratio:.2f}x); new path at {frac:.0%} of the "
              f"sgemm limit")


if __name__ == "__main__":
    main()
