"""Where and on what a run trains: the device, deterministic settings and the prepared data.

Shared by the train stage (``experiments.train``) and the units of work it sends out
(``experiments.units``), which may run on a Dask worker.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

import torch

from experiments import data as data_mod
from experiments import params as params_mod


def pick_device() -> torch.device:
    """CUDA, else MPS, else CPU; ``$FREEGRAD_DEVICE`` forces one."""
    if os.environ.get("FREEGRAD_DEVICE"):
        return torch.device(os.environ["FREEGRAD_DEVICE"])
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


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


def configuration_data(task, data: dict, cfg: dict) -> dict:
    """What a configuration trains on: ``task.config_data(data, cfg)`` where the task
    defines one (binary_unit: one data set per input size), else ``data``."""
    return task.config_data(data, cfg) if hasattr(task, "config_data") else data


def limit(data: dict, spec: dict) -> dict:
    """The first ``train_limit`` / ``test_limit`` examples (all when unset)."""
    out = dict(data)
    for part in ("train", "test"):
        n = spec.get(f"{part}_limit")
        if n is not None and n < len(data[f"{part}_x"]):
            out[f"{part}_x"], out[f"{part}_y"] = data[f"{part}_x"][:n], data[f"{part}_y"][:n]
    out["meta"] = {**data["meta"], "train_n": len(out["train_x"]), "test_n": len(out["test_x"])}
    return out


def prepare(spec: dict, device) -> dict:
    """The experiment's data, prepared by its task (and cut to the limits when every
    configuration trains on the same data)."""
    if spec.get("threads") and device.type == "cpu":
        # Tiny models: intra-op threads only add synchronisation (and, on a busy machine,
        # spinning that can make an epoch 100x slower).
        torch.set_num_threads(spec["threads"])
    task = params_mod.task_module(spec["task"])
    data = task.prepare(data_mod.load(spec["dataset"]), device)
    return data if hasattr(task, "config_data") else limit(data, spec)
