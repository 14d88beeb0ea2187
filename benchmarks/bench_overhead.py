"""Overhead of freegrad's Activation against native torch.sigmoid, and against freegrad 1.0.1.

Forward + backward of a 4096 x 4096 float32 tensor through ``Activation("Logistic")``
with no rule, ``d(Linear)`` and ``rectangular``; every variant runs once per round,
rounds interleave the variants (rotating their order), and each ratio is the
variant's median time over the native op's median time in the same process. The published freegrad 1.0.1 is
measured the same way in a subprocess (``PYTHONPATH`` pointing at a ``pip install
--no-deps --target`` copy), so both packages can be named ``freegrad``. Also prints
the bytes each variant saves for backward per element. The backward is
``torch.autograd.grad(y, x, g)``: the input gradient is handed on as a hidden
layer's would be, not copied into a leaf's ``.grad``.

    python benchmarks/bench_overhead.py [--rounds 30] [--published-dir DIR | --no-published]

Targets on a 2-core CPU: no rule <= 1.02x native, d(Linear) <= 0.9x, rectangular <= 1.1x;
saved bytes/element 0 (constant) and <= 1 (mask).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

VARIANTS = {"no rule": None, "d(Linear)": "d(Linear)", "rectangular": "rectangular"}
TARGETS = {"no rule": 1.02, "d(Linear)": 0.90, "rectangular": 1.10}
PUBLISHED = "freegrad==1.0.1"
DEFAULT_PUBLISHED_DIR = Path(__file__).resolve().parent / ".cache" / "freegrad-1.0.1"
MEMORY_MODULE = Path(__file__).resolve().parents[1] / "libs" / "freegrad" / "src" / "freegrad" / "memory.py"


def _step(fn, x, g):
    # autograd.grad, not .backward(): a hidden layer passes its input gradient on, it does not
    # accumulate it into a leaf's .grad (which would add a copy no network layer pays).
    torch.autograd.grad(fn(x), x, g)


def _variant_fn(freegrad, rule):
    act = freegrad.wrappers.Activation(forward="Logistic")
    if rule is None:
        return act

    def run(x):
        with freegrad.use(rule=rule, params={}, scope="activations"):
            return act(x)

    return run


def _saved_bytes_per_element(fn) -> float:
    # Loaded by path: in the 1.0.1 subprocess the name `freegrad` is the published package.
    spec = importlib.util.spec_from_file_location("freegrad_memory", MEMORY_MODULE)
    memory = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(memory)
    x = torch.randn(1024, requires_grad=True)
    return memory.saved_bytes(fn, x) / x.numel()


def measure(rounds: int, size: int) -> dict:
    """Median ratio to native per variant, median native ms, saved bytes per element."""
    import freegrad
    import freegrad.wrappers  # noqa: F401  (1.0.1 does not import it from the package root)

    torch.manual_seed(0)
    x = torch.randn(size, size, requires_grad=True)
    g = torch.randn(size, size)
    fns = {"native": torch.sigmoid} | {name: _variant_fn(freegrad, r) for name, r in VARIANTS.items()}
    times = {name: [] for name in fns}
    for _ in range(3):  # warm-up
        for fn in fns.values():
            _step(fn, x, g)
    names = list(fns)
    for i in range(rounds):
        order = names[i % len(names):] + names[: i % len(names)]
        for name in order:
            start = time.perf_counter()
            _step(fns[name], x, g)
            times[name].append(time.perf_counter() - start)
    native = statistics.median(times["native"])
    ratios = {name: statistics.median(times[name]) / native for name in VARIANTS}
    saved = {name: _saved_bytes_per_element(fns[name]) for name in fns}
    kernels = importlib.util.find_spec("freegrad.kernels")  # absent from 1.0.1
    return {
        "version": getattr(freegrad, "__version__", "1.0.1"),
        "mask_kernels": importlib.import_module("freegrad.kernels").native_status() if kernels else None,
        "native_ms": 1000 * native,
        "ratios": ratios,
        "saved_bytes_per_element": saved,
    }


def published_dir(requested: Path | None) -> Path:
    target = requested or DEFAULT_PUBLISHED_DIR
    if not (target / "freegrad").is_dir():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), PUBLISHED],
            check=True,
        )
    return target


def measure_published(rounds: int, size: int, target: Path) -> dict:
    env = os.environ | {"PYTHONPATH": str(target)}
    cmd = [sys.executable, __file__, "--worker", "--rounds", str(rounds), "--size", str(size)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def report(ours: dict, published: dict | None) -> None:
    print(f"forward+backward of {args.size}x{args.size} float32, Logistic; {args.rounds} interleaved rounds;"
          f" torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"native torch.sigmoid: {ours['native_ms']:.1f} ms (median)")
    print(f"our compiled mask kernels: {ours['mask_kernels']}")
    header = f"{'variant':<14}{'ours ' + ours['version']:>16}{'target':>9}"
    if published:
        header += f"{'freegrad ' + published['version']:>18}"
    print(header + f"{'saved B/elem ours':>20}" + (f"{'published':>11}" if published else ""))
    for name in VARIANTS:
        ratio = ours["ratios"][name]
        ok = "ok" if ratio <= TARGETS[name] else "MISS"
        line = f"{name:<14}{ratio:>15.3f}x{'<= ' + str(TARGETS[name]):>9} {ok:<4}"
        if published:
            line += f"{published['ratios'][name]:>13.3f}x"
        line += f"{ours['saved_bytes_per_element'][name]:>16.1f}"
        if published:
            line += f"{published['saved_bytes_per_element'][name]:>11.1f}"
        print(line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--published-dir", type=Path, default=None,
                        help=f"where {PUBLISHED} is (or gets) installed with pip --target")
    parser.add_argument("--no-published", action="store_true", help="skip the published version")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.rounds, args.size)))
        sys.exit(0)
    published = None
    if not args.no_published:
        with contextlib.suppress(subprocess.CalledProcessError):
            published = measure_published(args.rounds, args.size, published_dir(args.published_dir))
        if published is None:
            print(f"(could not install or run {PUBLISHED}; use --published-dir or --no-published)")
    report(measure(args.rounds, args.size), published)
