"""The data a unit trains on: its experiment's dataset prepared by the task, once per
process, and each configuration's part of it (``train_limit`` / ``test_limit`` keep the
first N examples: a deterministic subset, for the quick and smoke profiles).  The
learning-rate search (``experiment.phase == "tuning"``) trains on the training set less its
last ``tuning.validation`` examples and is evaluated on those (``holdout``): its "test" data
are the validation split, and it never sees the test set."""

from __future__ import annotations

import torch

from experiments.config import ParamsError
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


def holdout(data: dict, validation: int | float) -> dict:
    """The training set less its last ``validation`` examples (a count, or a fraction of the
    training set), as training data, and those examples as the evaluation ("test") data;
    the test set itself is dropped."""
    n = len(data["train_x"])
    held = validation if isinstance(validation, int) else round(validation * n)
    if not 0 < held < n:
        raise ParamsError(f"tuning.validation: {validation!r} holds out {held} of the {n} "
                          "training examples; it must leave some to train on and hold out one "
                          "or more")
    kept = n - held
    return {**data, "train_x": data["train_x"][:kept], "train_y": data["train_y"][:kept],
            "test_x": data["train_x"][kept:], "test_y": data["train_y"][kept:],
            "meta": {**data["meta"], "train_n": kept, "test_n": held,
                     "evaluated_on": f"validation: the last {held} of {n} training examples"}}


def configuration_data(experiment, data: dict, cname: str) -> dict:
    """What configuration ``cname`` trains on: ``task.config_data(data, cfg)`` where the task
    defines one (binary_unit: one data set per input size), else ``data``; cut to the
    limits; for the learning-rate search, its validation split (``holdout``)."""
    task = experiment.task
    if hasattr(task, "config_data"):
        data = task.config_data(data, experiment.config(cname))
    data = limit(data, experiment.spec)
    if experiment.phase == "tuning":
        data = holdout(data, experiment.spec["tuning"]["validation"])
    return data


def chance_accuracy(data: dict) -> float:
    """The accuracy of always answering the commonest evaluation label: what a failed
    (diverged) run counts as."""
    _, counts = torch.unique(data["test_y"].reshape(len(data["test_y"]), -1), dim=0,
                             return_counts=True)
    return round(float(counts.max()) / len(data["test_y"]), 6)
