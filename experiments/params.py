"""Loading and validating ``params.yaml``.

Every key is checked before any training starts: an unknown key, experiment,
profile or dataset is an error that names the key, the value and what is
accepted.  ``resolve`` returns one experiment's settings with the active
profile's overrides applied.

Experiment modules may accept extra keys by defining ``EXTRA_KEYS`` (a dict of
key -> type) and extra config keys by ``EXTRA_CONFIG_KEYS``.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import importlib.util
import sys
from pathlib import Path

import yaml

from experiments import paths

PROFILES = ("full", "quick", "smoke")
DATASETS = ("ones", "ones_bnn", "digits", "mnist", "fashion_mnist")
OPTIMIZERS = ("sgd", "adam")
TOP_KEYS = {"profile": str, "data": dict, "experiments": dict, "claims": dict}
DATA_KEYS = {"mirror": (str, type(None)), "ones": dict, "ones_bnn": dict}
ONES_KEYS = {"d": int, "n": int, "tau": float, "test_fraction": float, "seed": int}
# "Ones" for the binary units: one set per input size d.
ONES_BNN_KEYS = {**ONES_KEYS, "d": list}
# How reports/claims.{md,json} judge a configuration against its baseline.
CLAIMS_KEYS = {"metric": str, "tolerance": float, "k_std": float, "min_baseline": float}
# Gradient-direction diagnostics during training (freegrad.diagnostics).
DIAGNOSTICS_KEYS = {"every": int, "seeds": list, "configs": list}
EXPERIMENT_KEYS = {
    "title": str,
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
    "configs": dict,
    "profiles": dict,
    # run only these configurations (e.g. a smoke profile's subset)
    "select": list,
    # a deterministic subset: the first N training / test examples
    "train_limit": int,
    "test_limit": int,
    "diagnostics": dict,
    # torch CPU threads for the stage (default: torch's choice); 1 suits tiny models
    "threads": int,
    # wrap the model in torch.compile (default false: see benchmarks/bench_epoch.py)
    "compile": bool,
    # train the seeds of a configuration together, stacked with torch.func (default
    # false; small models with a deterministic rule only, see experiments/stacked.py)
    "stack_seeds": bool,
}
REQUIRED_EXPERIMENT_KEYS = ("dataset", "lr", "batch_size", "epochs", "seeds", "configs")
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
}
REQUIRED_CONFIG_KEYS = ("forward", "backward", "provenance")


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


def _check_keys(where: str, mapping, schema: dict, required=(), allow_unknown=False) -> None:
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


def _choice(where: str, value, accepted) -> None:
    if value not in accepted:
        raise ParamsError(f"{where}: unknown value {value!r}; accepted: {', '.join(accepted)}")


TRUE_DERIVATIVE = (None, "", "true", "standard")  # backward values meaning d(forward)


def _check_rule(where: str, cfg: dict) -> None:
    """Ask freegrad whether the forward, the rule and their parameters exist and bind.

    freegrad's own messages (unknown name with suggestions, unknown or invalid parameter
    and what is accepted) are kept; the params.yaml key path is put in front."""
    import freegrad as fg
    from freegrad import context, forwards

    try:
        forwards.get_forward(cfg["forward"]).bind(dict(cfg.get("forward_params") or {}))
    except (KeyError, ValueError, TypeError) as e:
        raise ParamsError(f"{where}.forward: {cfg['forward']!r} with forward_params "
                          f"{cfg.get('forward_params') or {}!r} is not accepted by freegrad: "
                          f"{_msg(e)}") from None
    backward = cfg.get("backward")
    if backward in TRUE_DERIVATIVE:
        return
    try:
        rule = fg.get(backward)
    except (fg.RuleError, KeyError, TypeError, ValueError) as e:
        raise ParamsError(f"{where}.backward: unknown rule {backward!r}: {_msg(e)}") from None
    try:
        rule.bind(dict(cfg.get("rule_params") or {}))
    except (KeyError, TypeError, ValueError) as e:
        raise ParamsError(f"{where}.rule_params: {cfg.get('rule_params') or {}!r} for rule "
                          f"{backward!r}: {_msg(e)}") from None
    scope = cfg.get("scope", "activations")
    try:
        context.parse_scope(scope)
    except (TypeError, ValueError):
        raise ParamsError(f"{where}.scope: unknown value {scope!r}; accepted: "
                          + ", ".join(("all", *context.SCOPES))) from None


def _msg(e: BaseException) -> str:
    # KeyError's str() is the repr of its argument; show the plain message
    return str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)


def experiment_module(name: str):
    """The module ``experiments.<name>`` that defines the experiment's model."""
    if importlib.util.find_spec(f"experiments.{name}") is None:
        raise ParamsError(
            f"experiments.{name}: no module experiments/{name}.py defines this experiment"
        )
    return importlib.import_module(f"experiments.{name}")


def _check_diagnostics(where: str, diag: dict, configs: dict) -> None:
    _check_keys(where, diag, DIAGNOSTICS_KEYS, ("every",))
    if diag["every"] <= 0:
        raise ParamsError(f"{where}.every: must be positive, got {diag['every']!r}")
    for cname in diag.get("configs", []):
        _choice(f"{where}.configs", cname, list(configs))


def _validate_experiment(name: str, spec: dict, module=None) -> None:
    where = f"experiments.{name}"
    schema = dict(EXPERIMENT_KEYS)
    config_schema = dict(CONFIG_KEYS)
    if module is not None:
        schema.update(getattr(module, "EXTRA_KEYS", {}))
        config_schema.update(getattr(module, "EXTRA_CONFIG_KEYS", {}))
    # Without the module (import_modules=False) its EXTRA_KEYS are unknown: let them pass.
    lenient = module is None
    _check_keys(where, spec, schema, REQUIRED_EXPERIMENT_KEYS, allow_unknown=lenient)
    _choice(f"{where}.dataset", spec["dataset"], DATASETS)
    _choice(f"{where}.optimizer", spec.get("optimizer", "sgd"), OPTIMIZERS)
    for key in ("lr", "batch_size", "epochs"):
        if spec[key] <= 0:
            raise ParamsError(f"{where}.{key}: must be positive, got {spec[key]!r}")
    seeds = spec["seeds"]
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ParamsError(f"{where}.seeds: expected a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ParamsError(f"{where}.seeds: repeated seed in {seeds!r}")
    if not spec["configs"]:
        raise ParamsError(f"{where}.configs: at least one configuration is needed")
    for cname, cfg in spec["configs"].items():
        _check_keys(f"{where}.configs.{cname}", cfg, config_schema, REQUIRED_CONFIG_KEYS,
                    allow_unknown=lenient)
        for key in ("batch_size", "lr"):
            if key in cfg and cfg[key] <= 0:
                raise ParamsError(f"{where}.configs.{cname}.{key}: must be positive, "
                                  f"got {cfg[key]!r}")
        _check_rule(f"{where}.configs.{cname}", cfg)
    for key in ("train_limit", "test_limit"):
        if key in spec and spec[key] <= 0:
            raise ParamsError(f"{where}.{key}: must be positive, got {spec[key]!r}")
    if "diagnostics" in spec:
        _check_diagnostics(f"{where}.diagnostics", spec["diagnostics"], spec["configs"])
    for pname, overrides in spec.get("profiles", {}).items():
        _choice(f"{where}.profiles.{pname}", pname, PROFILES)
        override_schema = {k: v for k, v in schema.items() if k != "profiles"}
        _check_keys(f"{where}.profiles.{pname}", overrides, override_schema,
                    allow_unknown=lenient)
        if "diagnostics" in overrides:
            _check_diagnostics(f"{where}.profiles.{pname}.diagnostics",
                               overrides["diagnostics"], overrides.get("configs", spec["configs"]))
        for cname in overrides.get("select", []):
            _choice(f"{where}.profiles.{pname}.select", cname,
                    list(overrides.get("configs", spec["configs"])))
    for cname in spec.get("select", []):
        _choice(f"{where}.select", cname, list(spec["configs"]))


def validate(params: dict, import_modules: bool = True) -> dict:
    """Check the whole of params.yaml; return it unchanged."""
    _check_keys("params", params, TOP_KEYS, ("profile", "data", "experiments"))
    _choice("profile", params["profile"], PROFILES)
    _check_keys("data", params["data"], DATA_KEYS, ("ones",))
    _check_keys("data.ones", params["data"]["ones"], ONES_KEYS, tuple(ONES_KEYS))
    if "ones_bnn" in params["data"]:
        _check_keys("data.ones_bnn", params["data"]["ones_bnn"], ONES_BNN_KEYS,
                    tuple(ONES_BNN_KEYS))
    if "claims" in params:
        _check_keys("claims", params["claims"], CLAIMS_KEYS, tuple(CLAIMS_KEYS))
    for name, spec in params["experiments"].items():
        module = experiment_module(name) if import_modules else None
        _validate_experiment(name, spec, module)
    return params


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
    """Settings of experiment ``name`` under ``profile`` (default: params['profile'])."""
    profile = profile or params["profile"]
    _choice("profile", profile, PROFILES)
    if name not in params["experiments"]:
        raise ParamsError(
            f"experiment {name!r} is not defined in params.yaml; defined: "
            + (", ".join(params["experiments"]) or "none")
            + f". Add experiments.{name} to params.yaml and experiments/{name}.py."
        )
    spec = copy.deepcopy(params["experiments"][name])
    overrides = spec.pop("profiles", {}).get(profile, {})
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(spec.get(key), dict) and key != "configs":
            spec[key] = {**spec[key], **copy.deepcopy(value)}
        else:
            spec[key] = copy.deepcopy(value)
    spec.setdefault("title", name)
    spec.setdefault("optimizer", "sgd")
    spec.setdefault("momentum", 0.0)
    spec.setdefault("weight_decay", 0.0)
    spec.setdefault("target_accuracy", 0.9)
    spec.setdefault("model", {})
    if "select" in spec:  # keep the order of `configs`
        spec["configs"] = {k: v for k, v in spec["configs"].items() if k in spec["select"]}
    for cfg in spec["configs"].values():
        cfg.setdefault("forward_params", {})
        cfg.setdefault("rule_params", {})
        cfg.setdefault("scope", "activations")
    return spec


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Validate params.yaml")
    parser.add_argument("--check", metavar="EXPERIMENT", help="also require this experiment")
    args = parser.parse_args(argv)
    try:
        params = load()
        if args.check:
            resolve(params, args.check)
    except ParamsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("params.yaml is valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
