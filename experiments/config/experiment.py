"""Loading ``params.yaml`` and resolving one experiment under a profile.

``resolve`` returns one experiment's settings with the active profile's overrides applied and
its ``grids`` expanded into ``configs`` (``experiments.config.grids``): one entry per
configuration, in grid order.  ``Experiment`` is that resolved experiment as one value, its
task module looked up once.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml

from experiments.config.checks import validate
from experiments.config.grids import expand
from experiments.config.schema import DEFAULT_SCOPE, PROFILES, ParamsError, choice
from experiments.config.tasks import task_module
from experiments.results import paths


def load(path: Path | None = None, import_modules: bool = True) -> dict:
    path = Path(path) if path is not None else paths.PARAMS
    try:
        with open(path, encoding="utf-8") as f:
            params = yaml.safe_load(f)
    except FileNotFoundError:
        raise ParamsError(f"{path}: file not found (the pipeline reads every setting from "
                          "it)") from None
    except yaml.YAMLError as e:
        raise ParamsError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(params, dict):
        raise ParamsError(f"{path}: expected a mapping at the top level")
    return validate(params, import_modules=import_modules)


def resolve(params: dict, name: str, profile: str | None = None) -> dict:
    """Settings of experiment ``name`` under ``profile`` (default: params['profile']),
    its grids expanded into ``configs``."""
    profile = profile or params["profile"]
    choice("profile", profile, PROFILES)
    if name not in params["experiments"]:
        raise ParamsError(
            f"experiment {name!r} is not defined in params.yaml; defined: "
            + (", ".join(params["experiments"]) or "none")
            + f". Add experiments.{name} to params.yaml."
        )
    spec = copy.deepcopy(params["experiments"][name])
    overrides = spec.pop("profiles", {}).get(profile, {})
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict):
            spec[key] = {**spec[key], **copy.deepcopy(value)}
        else:
            spec[key] = copy.deepcopy(value)
    for key, default in (("title", name), ("optimizer", "sgd"), ("momentum", 0.0),
                         ("weight_decay", 0.0), ("target_accuracy", 0.9), ("model", {}),
                         ("figures", [])):
        spec.setdefault(key, default)
    spec["configs"] = expand(f"experiments.{name}.grids", spec.pop("grids"))
    if "select" in spec:  # keep the order of the grids
        spec["configs"] = {k: v for k, v in spec["configs"].items() if k in spec["select"]}
    for cfg in spec["configs"].values():
        cfg.setdefault("forward_params", {})
        cfg.setdefault("rule_params", {})
        cfg.setdefault("scope", DEFAULT_SCOPE)
    return spec



@dataclass(frozen=True)
class Experiment:
    """One resolved experiment: its name, the profile it was resolved under and its settings
    (``resolve``'s dict, configurations expanded).  ``task`` is its task module, looked up
    once; it is left out when the experiment is pickled (to a worker), which looks it up
    again."""

    name: str
    profile: str
    spec: dict = field(hash=False, compare=False)
    # "final": the runs the stage reports; "tuning": its learning-rate search on the
    # validation split (experiments/training/tuning.py), tracked apart in MLflow
    phase: str = "final"

    @property
    def tracking_name(self) -> str:
        """Its MLflow experiment: ``<name>``, or ``<name>-tuning`` for the search."""
        return self.name if self.phase == "final" else f"{self.name}-{self.phase}"

    @classmethod
    def of(cls, params: dict, name: str, profile: str | None = None) -> Experiment:
        profile = profile or params["profile"]
        return cls(name, profile, resolve(params, name, profile))

    @cached_property
    def task(self):
        return task_module(self.spec["task"])

    def __getstate__(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "task"}

    @property
    def task_config_keys(self) -> dict:
        """The configuration keys the task accepts beyond the common ones."""
        return getattr(self.task, "EXTRA_CONFIG_KEYS", {})

    def config(self, cname: str) -> dict:
        return self.spec["configs"][cname]
