"""Overhead of freegrad's Activation against native torch.sigmoid, and against freegrad 1.0.1.

Forward + backward of an N x 4096 float32 tensor (N = 4096 and 256 by default) through
``Activation("Logistic")`` with no rule, ``d(Linear)`` and every rule whose mask is an
``fg.Interval`` (rectangular, straight_through, d(ReLU), ...), against ``torch.sigmoid``. Two
backwards: a dense upstream gradient (``torch.autograd.grad(y, x, g)``: the input gradient is
handed on as a hidden layer's would be, not copied into a leaf's ``.grad``) and
``y.sum().backward()`` (the upstream gradient is one number, expanded). Every variant runs once
per round (or as many times as 20 ms of native work takes, timed together, where one call is
shorter), rounds interleave the variants in a fresh random order, and each ratio is the median
over rounds of (variant time / native time in the same round), all in one process.

The header gives each variant's bytes read + written per element on paper (forward, backward)
and the floor ratio they imply, then the bytes it allocates afresh and the floor with those
(the kernel zeroes every new page, which at this size glibc maps anew per call;
``--allocator retain`` reruns under glibc settings that reuse freed memory); the machine's load
(``os.getloadavg``) is printed with the figures. The published freegrad 1.0.1 is measured the
same way in a subprocess (``PYTHONPATH`` pointing at a ``pip install --no-deps --target`` copy),
so both packages can be named ``freegrad``; it is off unless ``--published`` is given.

    python benchmarks/bench_overhead.py [--rounds 15] [--rows 4096 256] [--threads N] [--clock cpu]
                                        [--allocator retain] [--published [--published-dir DIR]]

Targets (2 threads): every Interval rule with a one-pass backward <= 0.95x native, no rule
<= 1.02x, d(Linear) <= 0.9x; saved bytes/element 0 (constant) and 1 (mask).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

COLS = 4096
PUBLISHED = "freegrad==1.0.1"
DEFAULT_PUBLISHED_DIR = Path(__file__).resolve().parent / ".cache" / "freegrad-1.0.1"
MEMORY_MODULE = (
    Path(__file__).resolve().parents[1] / "libs" / "freegrad" / "src" / "freegrad" / "memory.py"
)
BASE_VARIANTS = {"no rule": None, "d(Linear)": "d(Linear)", "rectangular": "rectangular"}
# Interval rules whose backward is one pass g * mask: the <= 0.95x target applies to them.
ONE_PASS_MASK_RULES = ["rectangular", "straight_through", "d(ReLU)", "d(ReLU6)", "d(HardTanh)",
                       "d(LeakyReLU)"]
# Interval rules that draw random numbers at backward (torch's serial generator): no target.
OTHER_MASK_RULES = ["positive_jam", "rectangular_jam"]
TARGETS = {"no rule": 1.02, "d(Linear)": 0.90} | {name: 0.95 for name in ONE_PASS_MASK_RULES}
MODES = ("dense g", "sum()")
MIN_SAMPLE_S = 0.02

# Bytes read + written per element, (forward, backward), float32 x and y, bool mask:
#   native sigmoid: forward reads x, writes y (8); backward reads g and y, writes grad (12), or
#   with sum() reads y and writes grad (8: g is one number);
#   fused mask rule: forward reads x, writes y and the mask (9); backward reads g and the mask,
#   writes grad (9), or with sum() reads the mask and writes grad (5);
#   d(Linear): forward as native; backward hands g on (0), with sum() the expanded g is
#   written out as x's gradient (4).
PAPER_BYTES = {
    "dense g": {"native": (8, 12), "no rule": (8, 12), "d(Linear)": (8, 0), "mask": (9, 9)},
    "sum()": {"native": (8, 8), "no rule": (8, 8), "d(Linear)": (8, 4), "mask": (9, 5)},
}


# Bytes per element of memory each variant allocates afresh per forward+backward: y (4), the
# mask (1), x's gradient (4; d(Linear) hands a dense g on, but writes out the expanded g of
# sum()). Glibc maps an allocation this large (64 MiB) anew on every call, and the kernel zeroes
# each new page before the op writes it: one more write per fresh byte. This is the floor where
# memory is not reused (the default allocator); --allocator retain reuses freed memory.
FRESH_BYTES = {
    "dense g": {"native": 8, "no rule": 8, "d(Linear)": 4, "mask": 9},
    "sum()": {"native": 8, "no rule": 8, "d(Linear)": 8, "mask": 9},
}
# glibc keeps freed memory for the next allocation: no mmap per allocation, no trimming.
RETAIN_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 40)}


def _per_variant(table: dict, name: str):
    """A variant's entry: its own, else the one-pass mask rules' shared one, else None."""
    if name in table:
        return table[name]
    return table["mask"] if name in ONE_PASS_MASK_RULES else None


def paper_bytes(mode: str, name: str) -> tuple[int, int] | None:
    return _per_variant(PAPER_BYTES[mode], name)


def fresh_bytes(mode: str, name: str) -> int | None:
    return _per_variant(FRESH_BYTES[mode], name)


def memory_retained() -> bool:
    return all(os.environ.get(k) == v for k, v in RETAIN_ENV.items())


def allocator() -> str:
    if memory_retained():
        return "retain (glibc keeps freed memory: " + " ".join(
            f"{k}={v}" for k, v in RETAIN_ENV.items()) + ")"
    return "system (glibc defaults: above 32 MiB a tensor is new, zeroed pages each call)"


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


def _step(fn, x, g, mode):
    if mode == "sum()":
        fn(x).sum().backward()
        x.grad = None
    else:
        # autograd.grad, not .backward(): a hidden layer passes its input gradient on, it does
        # not accumulate it into a leaf's .grad (which would add a copy no network layer pays).
        torch.autograd.grad(fn(x), x, g)


def _repeats(native, x, g, mode) -> int:
    """Calls per timed sample: enough for MIN_SAMPLE_S of native work (one call at 4096 rows,
    dozens at 256, where a single call is within the timer's and the scheduler's noise)."""
    start = time.perf_counter()
    _step(native, x, g, mode)
    return max(1, round(MIN_SAMPLE_S / (time.perf_counter() - start)))


def _variant_fn(freegrad, rule):
    act = freegrad.wrappers.Activation(forward="Logistic")
    if rule is None:
        return act

    def run(x):
        with freegrad.use(rule=rule, params={}, scope="activations", **_seed(freegrad, rule)):
            return act(x)

    return run


def _seed(freegrad, rule):
    stochastic = (
        getattr(freegrad.get(rule), "stochastic", False) if hasattr(freegrad, "get") else False
    )
    return {"seed": 0} if stochastic else {}


def _saved_bytes_per_element(fn) -> float:
    # Loaded by path: in the 1.0.1 subprocess the name `freegrad` is the published package.
    spec = importlib.util.spec_from_file_location("freegrad_memory", MEMORY_MODULE)
    memory = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(memory)
    x = torch.randn(1024, requires_grad=True)
    return memory.saved_bytes(fn, x) / x.numel()


def measure(rounds: int, rows: int, variants: dict, modes=MODES, clock=time.perf_counter) -> dict:
    """Per mode: median per-round ratio to native per variant, median native ms; saved bytes."""
    import freegrad
    import freegrad.wrappers  # noqa: F401  (1.0.1 does not import it from the package root)

    kernels = importlib.util.find_spec("freegrad.kernels")  # absent from 1.0.1
    status = None
    if kernels:
        status = importlib.import_module("freegrad.kernels").ensure_built()  # not in a timed step
    torch.manual_seed(0)
    x = torch.randn(rows, COLS, requires_grad=True)
    g = torch.randn(rows, COLS)
    fns = {"native": torch.sigmoid} | {
        name: _variant_fn(freegrad, r) for name, r in variants.items()
    }
    out = {"version": getattr(freegrad, "__version__", "1.0.1"), "mask_kernels": status,
           "modes": {},
           "saved_bytes_per_element": {name: _saved_bytes_per_element(fns[name]) for name in fns}}
    names = list(fns)
    order = random.Random(0)
    for mode in modes:
        times = {name: [] for name in fns}
        for _ in range(2):  # warm-up
            for fn in fns.values():
                _step(fn, x, g, mode)
        repeats = _repeats(fns["native"], x, g, mode)
        for _ in range(rounds):
            # a fresh order each round: no variant always follows the same one (the one before
            # leaves the allocator and the caches in its own state)
            for name in order.sample(names, len(names)):
                start = clock()
                for _ in range(repeats):
                    _step(fns[name], x, g, mode)
                times[name].append((clock() - start) / repeats)
        native = times["native"]
        out["modes"][mode] = {
            "native_ms": 1000 * statistics.median(native),
            "ratios": {
                name: statistics.median(
                    t / n for t, n in zip(times[name], native, strict=True)
                )
                for name in variants
            },
        }
    out["load"] = _load()
    return out


def published_dir(requested: Path | None) -> Path:
    target = requested or DEFAULT_PUBLISHED_DIR
    if not (target / "freegrad").is_dir():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
             "--target", str(target), PUBLISHED],
            check=True,
        )
    return target


def measure_published(rounds: int, rows: int, target: Path) -> dict:
    env = os.environ | {"PYTHONPATH": str(target)}
    cmd = [sys.executable, __file__, "--worker", "--rounds", str(rounds), "--rows", str(rows)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def report(rows: int, rounds: int, ours: dict, published: dict | None) -> None:
    print(f"\nforward+backward of {rows}x{COLS} float32, Logistic; {rounds} interleaved rounds;"
          f" torch {torch.__version__}, {torch.get_num_threads()} threads; {ours['load']} (after)")
    print(f"compiled mask kernels: {ours['mask_kernels']}")
    print(f"allocator: {allocator()}")
    print("floor: bytes read + written against native's"
          + ("" if memory_retained() else "; fresh floor: the same plus one write "
             "per byte of freshly allocated memory (the kernel zeroes new pages)"))
    print("'no rule' is the native op itself (Activation with no rule in force): its distance from "
          "1.00x is the measurement's noise")
    for mode, result in ours["modes"].items():
        native_bytes = sum(PAPER_BYTES[mode]["native"])
        print(f"\n[{mode}] native torch.sigmoid {result['native_ms']:.2f} ms (median); "
              f"bytes/element on paper: native forward {PAPER_BYTES[mode]['native'][0]}, "
              f"backward {PAPER_BYTES[mode]['native'][1]}")
        native_fresh = FRESH_BYTES[mode]["native"]
        fresh_memory = not memory_retained()
        header = (f"{'variant':<17}{'fwd+bwd B/elem':>15}{'floor':>8}"
                  + (f"{'fresh B':>8}{'fresh floor':>12}" if fresh_memory else "")
                  + f"{'measured':>10}{'target':>9}")
        pub = published and mode in published["modes"]
        if pub:
            header += f"{'freegrad ' + published['version']:>17}"
        print(header + f"{'saved B/elem':>14}" + (f"{'(1.0.1)':>9}" if pub else ""))
        for name, ratio in result["ratios"].items():
            paper = paper_bytes(mode, name)
            paper_txt = f"{paper[0]} + {paper[1]}" if paper else "-"
            floor = f"{sum(paper) / native_bytes:.2f}x" if paper else "-"
            fresh = fresh_bytes(mode, name)
            fresh_txt = str(fresh) if fresh is not None else "-"
            fresh_floor = (f"{(sum(paper) + fresh) / (native_bytes + native_fresh):.2f}x"
                           if paper and fresh is not None else "-")
            target = TARGETS.get(name)
            mark = (
                f"<= {target} {'PASS' if ratio <= target else 'MISS'}" if target else "(no target)"
            )
            line = (f"{name:<17}{paper_txt:>15}{floor:>8}"
                    + (f"{fresh_txt:>8}{fresh_floor:>12}" if fresh_memory else "")
                    + f"{ratio:>9.3f}x  {mark:<14}")
            if pub:
                their = published["modes"][mode]["ratios"].get(name)
                line += f"{their:>9.3f}x" if their is not None else f"{'':>10}"
            line += f"{ours['saved_bytes_per_element'][name]:>8.1f}"
            if pub and name in published["saved_bytes_per_element"]:
                line += f"{published['saved_bytes_per_element'][name]:>9.1f}"
            print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--rows", type=int, nargs="+", default=[4096, 256])
    parser.add_argument("--published", action="store_true", help=f"also measure {PUBLISHED}")
    parser.add_argument("--published-dir", type=Path, default=None,
                        help=f"where {PUBLISHED} is (or gets) installed with pip --target")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's)")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                        help="cpu: the process's CPU time (time.process_time, "
                             "page faults included), less sensitive to other processes' load; "
                             "with 1 thread no idle spinning")
    parser.add_argument("--allocator", choices=["system", "retain"], default="system",
                        help="retain: rerun under glibc settings that keep freed memory for the "
                             "next allocation, as a caching allocator does (no fresh pages)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.allocator == "retain" and not memory_retained():
        # glibc reads its tunables at start-up: the process has to start again with them
        os.execve(sys.executable, [sys.executable, *sys.argv], os.environ | RETAIN_ENV)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(measure(args.rounds, args.rows[0], BASE_VARIANTS)))
        return
    variants = {"no rule": None, "d(Linear)": "d(Linear)"} | {
        name: name for name in ONE_PASS_MASK_RULES + OTHER_MASK_RULES}
    print(f"before: {_load()}")
    for rows in args.rows:
        published = None
        if args.published:
            try:
                published = measure_published(args.rounds, rows, published_dir(args.published_dir))
            except subprocess.CalledProcessError:
                print(f"(could not install or run {PUBLISHED}; use --published-dir)")
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        print(f"clock: {clock.__name__}")
        report(rows, args.rounds, measure(args.rounds, rows, variants, clock=clock), published)


if __name__ == "__main__":
    main()
