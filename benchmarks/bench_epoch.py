"""One LeNet-5 / MNIST epoch with freegrad's activations against the plain PyTorch loop.

Every variant runs the same loop over the same in-memory tensors (batches by index from one
permutation, SGD with LR 0.01 and momentum 0.9, as the ``lenet`` experiment; an epoch is the
training pass over the 60,000 images plus the evaluation of the 10,000 test images):

* ``(a) plain``: native ``nn.Sigmoid`` activations (the baseline of every ratio);
* ``(a) plain, channels_last``: the same with channels_last weights, as the pipeline's
  ``build_lenet5`` makes them (oneDNN's CPU convolutions prefer it);
* ``ours, ...``: ``fg.Activation("Logistic")`` in every hidden layer, channels_last weights, and
  one ``fg.use(rule, scope="activations")`` block around the epoch, as the pipeline's training
  loop does: no rule (the native op), ``rectangular`` (a = -0.5, b = 0.5: the fused forward and
  one-pass backward of ``freegrad.kernels``), ``d(Linear)``, and the jamming rules ``full_jam``
  and ``positive_jam`` (their U[0, 1) numbers drawn inside the backward's loop);
* ``(b) published style`` (``--published-style``): torchvision's MNIST with ``ToTensor``
  through a ``DataLoader`` (shuffle, ``num_workers=0``), native ``nn.Sigmoid``.

The compiled kernels are built before anything is timed (``freegrad.kernels.ensure_built()``).
Every variant runs once untimed first (warm-up). Variants run once per round, rounds
interleave them (rotating their order), and each ratio is the median over rounds of (variant
time / (a) time in the same round). The machine's load is printed with the figures.

    FREEGRAD_DATA_MIRROR=/path/to/datasets python benchmarks/bench_epoch.py [--rounds 3]
        [--batch-sizes 256 64] [--train-limit N] [--published-style]

Targets: ours without a rule <= 1.03x (a); ours with rectangular <= 1.0x (a).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import freegrad as fg
import torch
import torch.nn.functional as F
from freegrad import kernels
from torch import nn

TARGETS = {"ours, no rule": 1.03, "ours, rectangular": 1.00}
RULES = {"ours, no rule": None, "ours, rectangular": ("rectangular", {"a": -0.5, "b": 0.5}),
         "ours, d(Linear)": ("d(Linear)", {}), "ours, full_jam": ("full_jam", {}),
         "ours, positive_jam": ("positive_jam", {})}


class LeNet5(nn.Sequential):
    def __init__(self, act):
        super().__init__(
            nn.Conv2d(1, 6, 5, padding=2), act(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), act(), nn.AvgPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), act(), nn.Linear(120, 84), act(),
            nn.Linear(84, 10))


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


def epoch(x, y, tx, ty, bs, act, channels_last=False, rule=None, seed=0) -> float:
    torch.manual_seed(seed)
    model = LeNet5(act)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    block = fg.use(rule[0], rule[1], scope="activations") if rule else contextlib.nullcontext()
    t0 = time.perf_counter()
    with block:
        model.train()
        perm = torch.randperm(len(x))
        loss_sum, correct = 0.0, 0
        for i in range(0, len(x), bs):
            idx = perm[i:i + bs]
            out = model(x[idx])
            loss = F.cross_entropy(out, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((out.argmax(1) == y[idx]).sum())
        model.eval()
        with torch.no_grad():
            for i in range(0, len(tx), 4096):
                int((model(tx[i:i + 4096]).argmax(1) == ty[i:i + 4096]).sum())
    return time.perf_counter() - t0


def published_epoch(train_ds, test_ds, bs, seed=0) -> float:
    """(b): torchvision dataset + ToTensor + DataLoader, as the published examples do."""
    torch.manual_seed(seed)
    model = LeNet5(nn.Sigmoid)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loader = torch.utils.data.DataLoader(train_ds, batch_size=bs, shuffle=True)
    test_loader = torch.utils.data.DataLoader(test_ds, batch_size=1000)
    t0 = time.perf_counter()
    model.train()
    for xb, yb in loader:
        out = model(xb)
        loss = F.cross_entropy(out, yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
    model.eval()
    with torch.no_grad():
        for xb, yb in test_loader:
            (model(xb).argmax(1) == yb).sum().item()
    return time.perf_counter() - t0


def mnist(tmp: Path, limit: int | None):
    """torchvision's MNIST from $FREEGRAD_DATA_MIRROR/MNIST/raw/*.gz (no download)."""
    from torchvision import datasets, transforms
    from torchvision.datasets.utils import extract_archive

    mirror = os.environ.get("FREEGRAD_DATA_MIRROR")
    if not mirror or not (Path(mirror) / "MNIST" / "raw").is_dir():
        sys.exit("set FREEGRAD_DATA_MIRROR (a folder with MNIST/raw/*.gz)")
    raw = tmp / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (Path(mirror) / "MNIST" / "raw").glob("*.gz"):
        shutil.copyfile(f, raw / f.name)
        extract_archive(str(raw / f.name), str(raw))
    tf = transforms.ToTensor()
    train_ds = datasets.MNIST(str(tmp), train=True, download=False, transform=tf)
    test_ds = datasets.MNIST(str(tmp), train=False, download=False, transform=tf)

    def img(t):  # as the pipeline's prepare_images: uint8 (N, 28, 28) -> float (N, 1, 28, 28)
        return (t.to(torch.float32) / 255.0).unsqueeze(1).contiguous()

    x, y = img(train_ds.data), train_ds.targets
    if limit:
        x, y = x[:limit], y[:limit]
        train_ds = torch.utils.data.Subset(train_ds, range(limit))
    return x, y, img(test_ds.data), test_ds.targets, train_ds, test_ds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256])
    parser.add_argument("--train-limit", type=int, default=None,
                        help="first N training images (default: all 60,000)")
    parser.add_argument("--published-style", action="store_true", help="also time (b)")
    args = parser.parse_args()
    torch.use_deterministic_algorithms(True, warn_only=True)
    print(f"compiled mask kernels: {kernels.ensure_built()}")  # built now, not in an epoch
    print(f"before: {_load()}")
    with tempfile.TemporaryDirectory() as tmp:
        x, y, tx, ty, train_ds, test_ds = mnist(Path(tmp), args.train_limit)
        print(f"LeNet-5 / MNIST, {len(x)} train + {len(tx)} test images per epoch; "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
              f"{args.rounds} interleaved rounds; times are medians")
        logistic = lambda: fg.Activation("Logistic")  # noqa: E731
        for bs in args.batch_sizes:
            variants = {
                "(a) plain": lambda bs=bs: epoch(x, y, tx, ty, bs, nn.Sigmoid),
                "(a) plain, channels_last": lambda bs=bs: epoch(x, y, tx, ty, bs, nn.Sigmoid, True),
                **{name: (lambda r=rule, bs=bs: epoch(x, y, tx, ty, bs, logistic, True, r))
                   for name, rule in RULES.items()},
            }
            if args.published_style:
                variants["(b) published style"] = (
                    lambda bs=bs: published_epoch(train_ds, test_ds, bs)
                )
            for fn in variants.values():  # warm-up (first-call initialisation), not timed
                fn()
            times = {name: [] for name in variants}
            names = list(variants)
            for r in range(args.rounds):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    times[name].append(variants[name]())
            base = times["(a) plain"]
            print(f"\nbatch size {bs}: (a) plain {statistics.median(base):.2f} s / epoch; "
                  f"{_load()}")
            print(f"{'variant':<26}{'s/epoch':>9}{'x (a)':>9}{'target':>10}")
            for name in names:
                ratio = statistics.median(t / b for t, b in zip(times[name], base, strict=True))
                target = TARGETS.get(name)
                mark = "" if target is None else (
                    f"<= {target}  " + ("PASS" if ratio <= target else "MISS"))
                print(f"{name:<26}{statistics.median(times[name]):>9.2f}{ratio:>8.3f}x  {mark}")


if __name__ == "__main__":
    main()
