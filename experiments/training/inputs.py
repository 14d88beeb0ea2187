"""The data a unit trains on: its experiment's dataset prepared by the task, once per
process, and each configuration's part of it (``train_limit`` / ``test_limit`` keep the
first N examples: a deterministic subset, for the quick and smoke profiles)."""

from __future__ import annotations

from experiments.results import datasets

_PREPARED: dict[tuple, dict] = {}  # this process's prepared data, by what it came from


def limit(data: dict, spec: dict) -> dict:
    """The first ``train_limit`` / ``test_limit`` examples (all when unset)."""
    out = dict(data)
    for part in ("train", "test"):
        n = spec.get(f"{part}_limit")
        if n is not None and n < len(data[f"{part}_x"]):
            out[f"{part}_x"], out[f"{part}_y"] = data[f"{part}_x"][:n], data[f"{part}_y"][:n]
    out["meta"] = {**data["meta"], "train_n": len(out["train_x"]), "test_n": len(out["test_x"])}
    return out


def experiment_data(experiment, device) -> dict:
    """``experiment``'s dataset on ``device`` as its task prepares it (cut to the limits when
    every configuration trains on the same data); prepared once per process for the same
    data settings, one experiment's data at a time."""
    spec, task = experiment.spec, experiment.task
    key = (spec["task"], spec["dataset"], spec.get("train_limit"), spec.get("test_limit"),
           str(device))
    if key not in _PREPARED:
        _PREPARED.clear()
        data = task.prepare(datasets.load(spec["dataset"]), device)
        _PREPARED[key] = data if hasattr(task, "config_data") else limit(data, spec)
    return _PREPARED[key]


def configuration_data(experiment, data: dict, cname: str) -> dict:
    """What configuration ``cname`` trains on: ``task.config_data(data, cfg)`` where the task
    defines one (binary_unit: one data set per input size), else ``data``; cut to the
    limits."""
    task = experiment.task
    if hasattr(task, "config_data"):
        data = task.config_data(data, experiment.config(cname))
    return limit(data, experiment.spec)
