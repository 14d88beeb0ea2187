"""The schema of ``params.yaml``: every accepted key with its type, and the checks that name
what was wrong (the key path, the value, what is accepted)."""

from __future__ import annotations

PROFILES = ("full", "quick", "smoke")
DATASETS = ("ones", "ones_bnn", "digits", "mnist", "fashion_mnist")
OPTIMIZERS = ("sgd", "adam")
TOP_KEYS = {"profile": str, "data": dict, "experiments": dict, "claims": dict,
            "executor": dict}
DATA_KEYS = {"mirror": (str, type(None)), "ones": dict, "ones_bnn": dict}
ONES_KEYS = {"d": int, "n": int, "tau": float, "test_fraction": float, "seed": int}
# "Ones" for the binary units: one set per input size d.
ONES_BNN_KEYS = {**ONES_KEYS, "d": list}
# How reports/claims.{md,json} judge a configuration against its reference.
CLAIMS_KEYS = {"metric": str, "delta": float, "min_baseline": float, "statements": dict}
# The learning-rate search every arm of an experiment gets alike (experiments/training/tuning.py).
TUNING_KEYS = {"lr": list, "widen": int, "epochs": int, "seeds": list,
               "validation": (int, float)}
# Gradient-direction diagnostics during training (freegrad.diagnostics).
DIAGNOSTICS_KEYS = {"every": int, "seeds": list, "configs": list}
EXPERIMENT_KEYS = {
    "title": str,
    "task": str,
    "dataset": str,
    "optimizer": str,
    "lr": float,
    "momentum": float,
    "weight_decay": float,
    "batch_size": int,
    "epochs": int,
    "seeds": list,
    "target_accuracy": float,
    "model": dict,
    "grids": list,
    "figures": list,
    "profiles": dict,
    # run only these configurations (e.g. a smoke profile's subset)
    "select": list,
    # a deterministic subset: the first N training / test examples
    "train_limit": int,
    "test_limit": int,
    "diagnostics": dict,
    # the learning-rate search on a validation split (TUNING_KEYS); null: none
    "tuning": (dict, type(None)),
    # torch CPU threads for the stage (default: torch's choice); 1 suits tiny models
    "threads": int,
    # wrap the model in torch.compile (default false: see benchmarks/bench_epoch.py)
    "compile": bool,
    # train the seeds of a configuration together, stacked with torch.func (default
    # false; small models with a deterministic rule only, see experiments/training/stacked.py)
    "stack_seeds": bool,
    # published numbers to set ours beside (the report's second table): PUBLISHED_KEYS
    "published": dict,
}
# ``published``: where the numbers come from, and per configuration name its top-1 error (%).
PUBLISHED_KEYS = {"source": str, "top1_error": dict}
REQUIRED_EXPERIMENT_KEYS = ("task", "dataset", "lr", "batch_size", "epochs", "seeds", "grids")
CONFIG_KEYS = {
    "forward": str,
    "forward_params": dict,
    "backward": (str, type(None)),
    "rule_params": dict,
    "scope": str,
    "provenance": str,
    # per-configuration overrides of the experiment's settings
    "batch_size": int,
    "lr": float,
    # the claims (ids of claims.statements in params.yaml) this configuration tests
    "claims": list,
}
REQUIRED_CONFIG_KEYS = ("forward", "backward", "provenance")
# A grid: its own keys, plus any configuration key (a field every configuration gets).
GRID_KEYS = {"name": str, "axes": dict, "baseline": dict, "aggregate": str}
REQUIRED_GRID_KEYS = ("name",)
# Heatmaps (rows x columns, one panel per value of `panels`) and line plots (y against
# axis `x`, one line per value of `lines`) of final test accuracy over a grid's axes.
FIGURE_KEYS = {"kind": str, "name": str, "rows": str, "columns": str, "panels": str,
               "x": str, "lines": str}
FIGURE_AXES = {"heatmap": ("rows", "columns"), "lines": ("x", "lines")}
# Fields of an expanded configuration that describe its place in the grids.
STRUCTURE = ("axes", "baseline", "claims", "aggregate")

TRUE_DERIVATIVE = (None, "", "true", "standard")  # backward values meaning d(forward)
DEFAULT_SCOPE = "activations"  # where a configuration's rule applies unless it sets `scope`


class ParamsError(ValueError):
    """params.yaml holds a key or value the workbench does not accept."""


def _accepts(kind, value) -> bool:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return True
    return isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)


def _type_name(kind) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join("null" if k is type(None) else k.__name__ for k in kinds)


def check_keys(where: str, mapping, schema: dict, required=(), allow_unknown=False) -> None:
    if not isinstance(mapping, dict):
        raise ParamsError(f"{where}: expected a mapping, got {mapping!r}")
    for key, value in mapping.items():
        if key not in schema and allow_unknown:
            continue
        if key not in schema:
            raise ParamsError(
                f"{where}.{key}: unknown key (value {value!r}); accepted keys: "
                + ", ".join(sorted(schema))
            )
        if not _accepts(schema[key], value):
            raise ParamsError(
                f"{where}.{key}: expected {_type_name(schema[key])}, got {value!r}"
            )
    for key in required:
        if key not in mapping:
            raise ParamsError(f"{where}.{key}: required key is missing")


def choice(where: str, value, accepted) -> None:
    if value not in accepted:
        raise ParamsError(f"{where}: unknown value {value!r}; accepted: {', '.join(accepted)}")



def message(e: BaseException) -> str:
    # KeyError's str() is the repr of its argument; show the plain message
    return str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)

