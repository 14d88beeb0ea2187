"""One LeNet-5 / MNIST epoch of the pipeline's training loop against two baselines.

* ``ours``: ``experiments.train.fit`` (in-memory tensors, batches by index, freegrad
  activations), with no rule (``d(Logistic)``), with a rule (``rectangular``), and with
  ``compile: true`` (torch.compile; its compile time is reported apart, not in the epoch).
* ``(a) plain``: a plain PyTorch loop over the same in-memory tensors, native ``nn.Sigmoid``;
  and the same loop with channels_last weights, as ``experiments.models.build_lenet5``
  makes them (so the share of the speed-up due to the layout is visible).
* ``(b) published style``: torchvision's MNIST with ``ToTensor`` through a ``DataLoader``
  (shuffle, ``num_workers=0``), native ``nn.Sigmoid``: how the published examples train.

Every variant runs once untimed first (warm-up).  An epoch is the training pass over
60,000 images plus the evaluation of the 10,000 test images, for every variant (``fit``
evaluates after each epoch).  SGD, LR 0.01, momentum 0.9 (the ``lenet`` experiment).
Variants run once per round, rounds interleave them, and each ratio is the median over
rounds of (variant time / (a) time in the same round).

    python benchmarks/bench_epoch.py [--rounds 3] [--batch-sizes 256 64] [--train-limit N]
                                     [--no-compile]

Targets: ours without a rule <= 1.03x (a); with a rule <= 1.10x (a); (b) / ours >= 1.6.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments import data as data_mod  # noqa: E402
from experiments import lenet, models, train  # noqa: E402
from experiments import params as params_mod  # noqa: E402

TARGETS = {"ours, no rule": 1.03, "ours, rectangular": 1.10}


class NativeLeNet5(nn.Sequential):
    def __init__(self):
        super().__init__(
            nn.Conv2d(1, 6, 5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2),
            nn.Conv2d(6, 16, 5), nn.Sigmoid(), nn.AvgPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(),
            nn.Linear(84, 10))


def plain_epoch(x, y, tx, ty, bs, seed=0, channels_last=False) -> float:
    """(a): the same tensors, batched by index, native activations."""
    torch.manual_seed(seed)
    model = NativeLeNet5()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    t0 = time.perf_counter()
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
    model = NativeLeNet5()
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


def ours_epoch(spec, cfg, data) -> float:
    rows = train.fit(lenet, {**spec, "epochs": 1}, cfg, 0, data, torch.device("cpu"))
    return rows[1]["seconds"]


def torchvision_sets(tmp: Path, limit: int | None):
    from torchvision import datasets, transforms
    from torchvision.datasets.utils import extract_archive

    mirror = data_mod.mirror_dir(params_mod.load(import_modules=False))
    if mirror is None:
        sys.exit("set FREEGRAD_DATA_MIRROR (a folder with MNIST/raw/*.gz)")
    raw = tmp / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (mirror / "MNIST" / "raw").glob("*.gz"):
        shutil.copyfile(f, raw / f.name)
        extract_archive(str(raw / f.name), str(raw))
    tf = transforms.ToTensor()
    train_ds = datasets.MNIST(str(tmp), train=True, download=False, transform=tf)
    test_ds = datasets.MNIST(str(tmp), train=False, download=False, transform=tf)
    if limit:
        train_ds = torch.utils.data.Subset(train_ds, range(limit))
    return train_ds, test_ds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[256, 64])
    parser.add_argument("--train-limit", type=int, default=None,
                        help="first N training images (default: all 60,000)")
    parser.add_argument("--no-compile", action="store_true", help="skip the compile variant")
    args = parser.parse_args()
    os.environ.setdefault("FREEGRAD_DEVICE", "cpu")
    train.configure_determinism()  # as the pipeline runs (it applies to every variant)

    params = params_mod.load()
    spec = params_mod.resolve(params, "lenet", "full")
    spec.pop("diagnostics", None)
    raw = data_mod.load("mnist") if (data_mod.paths.PROCESSED / "mnist.pt").is_file() else None
    with tempfile.TemporaryDirectory() as tmp:
        train_ds, test_ds = torchvision_sets(Path(tmp), args.train_limit)
        if raw is None:
            raw = data_mod.fetch_torchvision("mnist", Path(tmp) / "fv", data_mod.mirror_dir(params))
        data = models.prepare_images(raw, torch.device("cpu"))
        data = train.limit(data, {"train_limit": args.train_limit} if args.train_limit else {})
        x, y, tx, ty = data["train_x"], data["train_y"], data["test_x"], data["test_y"]
        print(f"LeNet-5 / MNIST, {len(x)} train + {len(tx)} test images per epoch; "
              f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
              f"{args.rounds} interleaved rounds; times are medians")
        for bs in args.batch_sizes:
            bspec = {**spec, "batch_size": bs}
            cfgs = {"ours, no rule": spec["configs"]["standard"],
                    "ours, rectangular": spec["configs"]["rectangular"]}
            variants = {
                "(a) plain": lambda bs=bs: plain_epoch(x, y, tx, ty, bs),
                "(a) plain, channels_last": lambda bs=bs: plain_epoch(x, y, tx, ty, bs,
                                                                      channels_last=True),
                "(b) published style": lambda bs=bs: published_epoch(train_ds, test_ds, bs),
                **{name: (lambda c=c, s=bspec: ours_epoch(s, c, data)) for name, c in cfgs.items()},
            }
            compile_s = None
            if not args.no_compile:
                cspec = {**bspec, "compile": True}
                t0 = time.perf_counter()
                first = ours_epoch(cspec, cfgs["ours, no rule"], data)  # compiles
                compile_s = time.perf_counter() - t0 - first
                variants["ours, no rule, compile"] = (
                    lambda s=cspec, c=cfgs["ours, no rule"]: ours_epoch(s, c, data))
            for fn in variants.values():  # warm-up (first-call initialisation), not timed
                fn()
            times = {name: [] for name in variants}
            names = list(variants)
            for r in range(args.rounds):
                for name in names[r % len(names):] + names[:r % len(names)]:
                    times[name].append(variants[name]())
            base = times["(a) plain"]
            print(f"\nbatch size {bs}: (a) plain {statistics.median(base):.2f} s / epoch")
            print(f"{'variant':<26}{'s/epoch':>9}{'x (a)':>9}{'target':>10}")
            for name in names:
                ratio = statistics.median(t / b for t, b in zip(times[name], base, strict=True))
                target = TARGETS.get(name)
                mark = "" if target is None else (
                    f"<= {target}  " + ("ok" if ratio <= target else "MISS"))
                print(f"{name:<26}{statistics.median(times[name]):>9.2f}{ratio:>8.3f}x  {mark}")
            speedup = statistics.median(p / o for p, o in zip(times["(b) published style"],
                                                              times["ours, no rule"], strict=True))
            print(f"(b) / ours, no rule: {speedup:.2f}x faster (target >= 1.6)  "
                  + ("ok" if speedup >= 1.6 else "MISS"))
            if compile_s is not None:
                print(f"torch.compile: first epoch also spent {compile_s:.1f} s compiling")


if __name__ == "__main__":
    main()
