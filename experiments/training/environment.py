"""Where a run trains: the device, its CPU threads, deterministic settings, the allocator.

Shared by the train stage (``experiments.training.stage``) and the units of work it sends
out (``experiments.training.units``), which may run on a Dask worker.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import torch


def pick_device() -> torch.device:
    """CUDA, else MPS, else CPU; ``$FREEGRAD_DEVICE`` forces one."""
    if os.environ.get("FREEGRAD_DEVICE"):
        return torch.device(os.environ["FREEGRAD_DEVICE"])
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def threads_of(spec: dict, device) -> int:
    """The CPU threads every unit of ``spec`` uses wherever it runs: the experiment's
    ``threads`` (tiny models: intra-op threads only add synchronisation and, on a busy
    machine, spinning that can make an epoch 100x slower), else torch's default.  Results
    follow the thread count (reduction order), so it is part of a unit's key."""
    if spec.get("threads") and device.type == "cpu":
        return spec["threads"]
    return torch.get_num_threads()


def configure_determinism() -> None:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False


# glibc's mallopt() options and the largest block its own dynamic threshold would reach.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, _DYNAMIC_MMAP_MAX = -1, -3, 32 * 2**20


def reuse_freed_memory() -> bool:
    """Let this process reuse freed tensor memory, as a plain Python process does.

    Dask's nanny starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (to return memory
    to the OS), which also switches off glibc's dynamic mmap threshold: every tensor above
    128 KiB then comes from a fresh ``mmap`` and is page-faulted in again at each step, and a
    LeNet epoch takes twice as long (``benchmarks/bench_executor.py``).  Where that variable
    is set, set the thresholds to where the dynamic rule ends up (mmap above 32 MiB, trim
    above 64 MiB).  Returns whether it changed anything (no-op off glibc).
    """
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        return False
    name = ctypes.util.find_library("c")
    mallopt = getattr(ctypes.CDLL(name), "mallopt", None) if name else None
    if mallopt is None:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, _DYNAMIC_MMAP_MAX)
                and mallopt(_M_TRIM_THRESHOLD, 2 * _DYNAMIC_MMAP_MAX))
