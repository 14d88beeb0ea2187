"""Loading, validating and expanding ``params.yaml``.

Every key is checked before any training starts: an unknown key, experiment,
profile, task or dataset is an error that names the key, the value and what is
accepted.  ``resolve`` returns one experiment's settings with the active
profile's overrides applied and its ``grids`` expanded into ``configs``: one
entry per configuration, in grid order, with its fields (forward, backward,
rule_params, provenance, batch_size / lr / d when set) and its structure:
``axes`` (axis -> value), ``baseline`` (the axis values that pick its baseline),
``claims`` (the claims it tests) and ``aggregate`` (an axis to aggregate claims
over).  Claims, tables and figures read those fields, never a name.

    python -m experiments.params                 # check the file
    python -m experiments.params --show lenet    # the expanded configurations

A task module (``experiments/tasks/<task>.py``) may accept extra experiment keys
(``EXTRA_KEYS``: key -> type) and configuration keys (``EXTRA_CONFIG_KEYS``).
"""

from __future__ import annotations

import argparse
import copy
import importlib
import importlib.util
import itertools
import sys
from pathlib import Path

import yaml

from experiments import paths
from experiments.executor import Executor, ExecutorError

PROFILES = ("full", "quick", "smoke")
DATASETS = ("ones", "ones_bnn", "digits", "mnist", "fashion_mnist")
OPTIMIZERS = ("sgd", "adam")
TOP_KEYS = {"profile": str, "data": dict, "experiments": dict, "claims": dict,
            "executor": dict}
DATA_KEYS = {"mirror": (str, type(None)), "ones": dict, "ones_bnn": dict}
ONES_KEYS = {"d": int, "n": int, "tau": float, "test_fraction": float, "seed": int}
# "Ones" for the binary units: one set per input size d.
ONES_BNN_KEYS = {**ONES_KEYS, "d": list}
# How reports/claims.{md,json} judge a configuration against its baseline.
CLAIMS_KEYS = {"metric": str, "tolerance": float, "k_std": float, "min_baseline": float,
               "control": str, "statements": dict}
# How "our control" is picked among a baseline's candidates (``controls_of``).
CONTROL_RULES = ("best_mean",)
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
    # torch CPU threads for the stage (default: torch's choice); 1 suits tiny models
    "threads": int,
    # wrap the model in torch.compile (default false: see benchmarks/bench_epoch.py)
    "compile": bool,
    # train the seeds of a configuration together, stacked with torch.func (default
    # false; small models with a deterministic rule only, see experiments/stacked.py)
    "stack_seeds": bool,
}
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
        raise ParamsError(f"{where}.backward: {_msg(e)}") from None  # names the rule
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


def task_module(task: str, where: str = "task"):
    """The module ``experiments.tasks.<task>``: a task's data, model, loss and score."""
    if not isinstance(task, str) or importlib.util.find_spec(f"experiments.tasks.{task}") is None:
        raise ParamsError(f"{where}: unknown task {task!r}; accepted: " + ", ".join(TASKS))
    return importlib.import_module(f"experiments.tasks.{task}")


TASKS = tuple(sorted(p.stem for p in paths.TASKS.glob("*.py")
                     if not p.stem.startswith("_") and p.stem != "models"))


# ---------------------------------------------------------------- grids

def _axis_levels(where: str, axis: str, values) -> list[tuple]:
    """[(axis value, fields it sets)] of one axis: named variants or a list of values."""
    if isinstance(values, dict) and values:
        if axis in CONFIG_KEYS:
            raise ParamsError(f"{where}: an axis of named variants may not be called like "
                              f"the field {axis!r}; rename the axis")
        for vname, fields in values.items():
            if not isinstance(fields, dict):
                raise ParamsError(f"{where}.{vname}: expected a mapping of fields, "
                                  f"got {fields!r}")
        return [(str(v), f) for v, f in values.items()]
    if isinstance(values, list) and values:
        return [(v, {axis: v}) for v in values]
    raise ParamsError(f"{where}: expected a non-empty list of values or a mapping of "
                      f"named variants, got {values!r}")


def _format(where: str, template: str, names: dict) -> str:
    try:
        return template.format_map(names)
    except (KeyError, IndexError, ValueError) as e:
        raise ParamsError(f"{where}: cannot fill {template!r} ({_msg(e)}); it may name "
                          + ", ".join(sorted(names))) from None


def _grid_configs(where: str, grid: dict) -> list[tuple[str, dict]]:
    """The configurations of one grid, as (name, fields + structure), in product order."""
    _check_keys(where, grid, {**GRID_KEYS, **CONFIG_KEYS}, REQUIRED_GRID_KEYS,
                allow_unknown=True)
    axes = grid.get("axes", {})
    levels = [_axis_levels(f"{where}.axes.{a}", a, v) for a, v in axes.items()]
    fixed = {k: v for k, v in grid.items() if k not in GRID_KEYS}
    out = []
    for combo in itertools.product(*levels):
        cfg = copy.deepcopy(fixed)
        for _, fields in combo:
            cfg.update(copy.deepcopy(fields))
        values = {a: v for a, (v, _) in zip(axes, combo, strict=True)}
        for key in ("forward", "backward", "provenance", "scope"):
            if isinstance(cfg.get(key), str) and "{" in cfg[key]:
                cfg[key] = _format(f"{where}.{key}", cfg[key], {**values, **cfg})
        cfg.update(axes=values, baseline=grid.get("baseline"),
                   claims=cfg.get("claims", grid.get("claims", [])),
                   aggregate=grid.get("aggregate"))
        out.append((_format(f"{where}.name", grid["name"], values), cfg))
    return out


def expand(where: str, grids) -> dict:
    """Every configuration the ``grids`` of an experiment give, by name, in order."""
    if not isinstance(grids, list) or not grids:
        raise ParamsError(f"{where}: expected a non-empty list of grids, got {grids!r}")
    configs: dict = {}
    for i, grid in enumerate(grids):
        if not isinstance(grid, dict):
            raise ParamsError(f"{where}.{i}: expected a mapping, got {grid!r}")
        for cname, cfg in _grid_configs(f"{where}.{i}", grid):
            if cname in configs:
                raise ParamsError(f"{where}.{i}.name: configuration {cname!r} is given twice; "
                                  "make the names differ by an axis value")
            configs[cname] = cfg
    return configs


def setting_of(spec: dict, cfg: dict, key: str):
    """A configuration's axis value or field ``key``, else the experiment's setting."""
    return cfg["axes"].get(key, cfg.get(key, spec.get(key)))


def _baseline_matches(cname: str, spec: dict) -> list[str]:
    """Every configuration whose axis values (and settings) are ``cname``'s with its
    grid's ``baseline`` applied, in order (keys the target does not name may differ)."""
    cfg = spec["configs"][cname]
    if not cfg.get("baseline"):
        return []
    target = {**cfg["axes"], **cfg["baseline"]}
    return [other for other, ocfg in spec["configs"].items()
            if all(setting_of(spec, ocfg, k) == v for k, v in target.items())]


def baseline_of(cname: str, spec: dict) -> str | None:
    """The configuration ``cname`` is compared with: the first that its grid's
    ``baseline`` picks (``_baseline_matches``); None when ``cname`` is that baseline, has
    none, or its baseline was not run."""
    first = next(iter(_baseline_matches(cname, spec)), None)
    return None if first == cname else first


def controls_of(cname: str, spec: dict) -> list[str]:
    """The candidates for "our control" of ``cname``: its baseline and every other
    configuration its ``baseline`` picks, i.e. the same model and derivative with settings
    the target leaves free (lenet's ``standard_lr<lr>``: other learning rates).  The claims
    stage takes the best of them (params ``claims.control``)."""
    matches = _baseline_matches(cname, spec)
    return [] if not matches or matches[0] == cname else matches


# ---------------------------------------------------------------- validation

def _check_diagnostics(where: str, diag: dict, configs: dict) -> None:
    _check_keys(where, diag, DIAGNOSTICS_KEYS, ("every",))
    if diag["every"] <= 0:
        raise ParamsError(f"{where}.every: must be positive, got {diag['every']!r}")
    for cname in diag.get("configs", []):
        _choice(f"{where}.configs", cname, list(configs))


def _check_positive(where: str, mapping: dict, keys) -> None:
    for key in keys:
        if key in mapping and mapping[key] <= 0:
            raise ParamsError(f"{where}.{key}: must be positive, got {mapping[key]!r}")


def _check_configs(where: str, configs: dict, config_schema: dict, lenient: bool,
                   claims: list) -> None:
    for cname, cfg in configs.items():
        fields = {k: v for k, v in cfg.items() if k not in STRUCTURE or k == "claims"}
        _check_keys(f"{where}.configs.{cname}", fields, config_schema, REQUIRED_CONFIG_KEYS,
                    allow_unknown=lenient)
        _check_positive(f"{where}.configs.{cname}", cfg, ("batch_size", "lr"))
        for claim in cfg["claims"]:
            _choice(f"{where}.configs.{cname}.claims", claim, claims)
        _check_rule(f"{where}.configs.{cname}", cfg)


def _check_figures(where: str, figures: list, configs: dict) -> None:
    axes = {a for cfg in configs.values() for a in cfg["axes"]}
    for i, fig in enumerate(figures):
        _check_keys(f"{where}.{i}", fig, FIGURE_KEYS, ("kind", "name"))
        _choice(f"{where}.{i}.kind", fig["kind"], list(FIGURE_AXES))
        for key in FIGURE_AXES[fig["kind"]] + (("panels",) if "panels" in fig else ()):
            if key not in fig:
                raise ParamsError(f"{where}.{i}.{key}: required key is missing")
            _choice(f"{where}.{i}.{key}", fig[key], sorted(axes))


def _check_profiles(where: str, spec: dict, schema: dict, lenient: bool) -> None:
    for pname, overrides in spec.get("profiles", {}).items():
        _choice(f"{where}.profiles.{pname}", pname, PROFILES)
        override_schema = {k: v for k, v in schema.items() if k != "profiles"}
        _check_keys(f"{where}.profiles.{pname}", overrides, override_schema,
                    allow_unknown=lenient)
        configs = (expand(f"{where}.profiles.{pname}.grids", overrides["grids"])
                   if "grids" in overrides else spec["configs"])
        if "diagnostics" in overrides:
            _check_diagnostics(f"{where}.profiles.{pname}.diagnostics",
                               overrides["diagnostics"], configs)
        for cname in overrides.get("select", []):
            _choice(f"{where}.profiles.{pname}.select", cname, list(configs))


def _validate_experiment(name: str, spec: dict, module=None, claims=()) -> None:
    where = f"experiments.{name}"
    schema, config_schema = dict(EXPERIMENT_KEYS), dict(CONFIG_KEYS)
    if module is not None:
        schema.update(getattr(module, "EXTRA_KEYS", {}))
        config_schema.update(getattr(module, "EXTRA_CONFIG_KEYS", {}))
    # Without the module (import_modules=False) its EXTRA_KEYS are unknown: let them pass.
    lenient = module is None
    _check_keys(where, spec, schema, REQUIRED_EXPERIMENT_KEYS, allow_unknown=lenient)
    _choice(f"{where}.dataset", spec["dataset"], DATASETS)
    _choice(f"{where}.optimizer", spec.get("optimizer", "sgd"), OPTIMIZERS)
    _check_positive(where, spec, ("lr", "batch_size", "epochs", "train_limit", "test_limit"))
    seeds = spec["seeds"]
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ParamsError(f"{where}.seeds: expected a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ParamsError(f"{where}.seeds: repeated seed in {seeds!r}")
    spec = {**spec, "configs": expand(f"{where}.grids", spec["grids"])}
    _check_configs(where, spec["configs"], config_schema, lenient, list(claims))
    if "diagnostics" in spec:
        _check_diagnostics(f"{where}.diagnostics", spec["diagnostics"], spec["configs"])
    _check_figures(f"{where}.figures", spec.get("figures", []), spec["configs"])
    _check_profiles(where, spec, schema, lenient)
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
        _choice("claims.control", params["claims"]["control"], CONTROL_RULES)
    try:  # where runs execute (experiments/executor.py); no stage's param
        Executor.from_params(params)
    except ExecutorError as e:
        raise ParamsError(str(e)) from None
    for name, spec in params["experiments"].items():
        if not isinstance(spec, dict):
            raise ParamsError(f"experiments.{name}: expected a mapping, got {spec!r}")
        module = (task_module(spec.get("task"), f"experiments.{name}.task")
                  if import_modules else None)
        _validate_experiment(name, spec, module, params.get("claims", {}).get("statements", {}))
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
    """Settings of experiment ``name`` under ``profile`` (default: params['profile']),
    its grids expanded into ``configs``."""
    profile = profile or params["profile"]
    _choice("profile", profile, PROFILES)
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
        cfg.setdefault("scope", "activations")
    return spec


def show(params: dict, name: str, profile: str | None = None) -> str:
    """The expanded configurations of ``name``, as YAML."""
    spec = resolve(params, name, profile)
    configs = {}
    for cname, cfg in spec["configs"].items():
        baseline = baseline_of(cname, spec)
        configs[cname] = {**{k: v for k, v in cfg.items() if k not in STRUCTURE},
                          "axes": cfg["axes"], "baseline": baseline,
                          "claims": cfg["claims"] if baseline else [],
                          **({"aggregate": cfg["aggregate"]} if cfg["aggregate"] else {})}
    return yaml.safe_dump({name: configs}, sort_keys=False, allow_unicode=True, width=100)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Validate params.yaml")
    parser.add_argument("--check", metavar="EXPERIMENT", help="also require this experiment")
    parser.add_argument("--show", metavar="EXPERIMENT",
                        help="print the experiment's expanded configurations")
    parser.add_argument("--profile", choices=PROFILES, help="with --show (default: params')")
    args = parser.parse_args(argv)
    try:
        params = load()
        if args.check:
            resolve(params, args.check)
        if args.show:
            print(show(params, args.show, args.profile), end="")
            return 0
    except ParamsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("params.yaml is valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
