"""The checks of a whole ``params.yaml``: every key before any training starts.  An unknown
key, experiment, profile, task, dataset, rule or rule parameter is an error that names the key
path, the value and what is accepted."""

from __future__ import annotations

from experiments.config.grids import expand
from experiments.config.schema import (
    CLAIMS_KEYS,
    CONFIG_KEYS,
    DATA_KEYS,
    DATASETS,
    DEFAULT_SCOPE,
    DIAGNOSTICS_KEYS,
    EXPERIMENT_KEYS,
    FIGURE_AXES,
    FIGURE_KEYS,
    ONES_BNN_KEYS,
    ONES_KEYS,
    OPTIMIZERS,
    PROFILES,
    PUBLISHED_KEYS,
    REQUIRED_CONFIG_KEYS,
    REQUIRED_EXPERIMENT_KEYS,
    STRUCTURE,
    TOP_KEYS,
    TRUE_DERIVATIVE,
    TUNING_KEYS,
    ParamsError,
    check_keys,
    choice,
    message,
)
from experiments.config.tasks import task_module
from experiments.training import binding
from experiments.training.executor import Executor, ExecutorError


def _check_schedules(where: str, rule_params: dict) -> None:
    """Each mapping among ``rule_params`` is a schedule spec freegrad reads
    (``fg.schedules.from_spec``: its kind and keys); the error names the parameter's key."""
    from freegrad import schedules

    for key, value in rule_params.items():
        if not isinstance(value, dict):
            continue
        try:
            schedules.from_spec(value)
        except (TypeError, ValueError) as e:
            raise ParamsError(f"{where}.rule_params.{key}: {value!r} is not a schedule: "
                              f"{message(e)}") from None


def _check_rule(where: str, cfg: dict) -> None:
    """Ask freegrad whether the forward, the rule and their parameters exist and bind.

    The rule is bound as training binds it (``binding.rule_block``, the ``fg.use`` block):
    a scheduled parameter is checked at its knots (step 0, ``steps``, the boundaries).
    freegrad's own messages (unknown name with suggestions, unknown or invalid parameter
    and what is accepted) are kept; the params.yaml key path is put in front."""
    import freegrad as fg
    from freegrad import context, forwards

    try:
        forwards.get_forward(cfg["forward"]).bind(dict(cfg.get("forward_params") or {}))
    except (KeyError, ValueError, TypeError) as e:
        raise ParamsError(f"{where}.forward: {cfg['forward']!r} with forward_params "
                          f"{cfg.get('forward_params') or {}!r} is not accepted by freegrad: "
                          f"{message(e)}") from None
    backward = cfg.get("backward")
    if backward in TRUE_DERIVATIVE:
        return
    try:
        fg.get(backward)
    except (fg.RuleError, KeyError, TypeError, ValueError) as e:
        raise ParamsError(f"{where}.backward: {message(e)}") from None  # names the rule
    scope = cfg.get("scope", DEFAULT_SCOPE)
    try:
        scopes = context.parse_scope(scope)
    except (TypeError, ValueError):
        raise ParamsError(f"{where}.scope: unknown value {scope!r}; accepted: "
                          + ", ".join(("all", *context.SCOPES, context.FEEDBACK))) from None
    try:  # a layer feedback rule takes scope feedback, and only it does
        context.check_rule_scope(fg.get(backward), scopes)
    except ValueError as e:
        raise ParamsError(f"{where}.scope: {scope!r} for rule {backward!r}: {e}") from None
    _check_schedules(where, dict(cfg.get("rule_params") or {}))
    try:
        binding.rule_block(cfg)
    except (KeyError, TypeError, ValueError) as e:
        raise ParamsError(f"{where}.rule_params: {cfg.get('rule_params') or {}!r} for rule "
                          f"{backward!r}: {message(e)}") from None


def _check_diagnostics(where: str, diag: dict, configs: dict) -> None:
    check_keys(where, diag, DIAGNOSTICS_KEYS, ("every",))
    if diag["every"] <= 0:
        raise ParamsError(f"{where}.every: must be positive, got {diag['every']!r}")
    for cname in diag.get("configs", []):
        choice(f"{where}.configs", cname, list(configs))


def _check_published(where: str, published: dict, configs: dict) -> None:
    """Published numbers: their source, and a top-1 error (%) per configuration named."""
    check_keys(where, published, PUBLISHED_KEYS, tuple(PUBLISHED_KEYS))
    for cname, value in published["top1_error"].items():
        choice(f"{where}.top1_error", cname, list(configs))
        check_keys(f"{where}.top1_error", {cname: value}, {cname: float})


def _check_positive(where: str, mapping: dict, keys) -> None:
    for key in keys:
        if key in mapping and mapping[key] <= 0:
            raise ParamsError(f"{where}.{key}: must be positive, got {mapping[key]!r}")


def _check_configs(where: str, configs: dict, config_schema: dict, lenient: bool,
                   claims: list) -> None:
    for cname, cfg in configs.items():
        fields = {k: v for k, v in cfg.items() if k not in STRUCTURE or k == "claims"}
        check_keys(f"{where}.configs.{cname}", fields, config_schema, REQUIRED_CONFIG_KEYS,
                    allow_unknown=lenient)
        _check_positive(f"{where}.configs.{cname}", cfg, ("batch_size", "lr"))
        for claim in cfg["claims"]:
            choice(f"{where}.configs.{cname}.claims", claim, claims)
        _check_rule(f"{where}.configs.{cname}", cfg)


def _check_tuning(where: str, tuning: dict | None, partial: bool = False) -> None:
    """The learning-rate search: a grid of positive rates, positive epochs, seeds, and a
    validation split (a count of training examples, or a fraction in (0, 1))."""
    if tuning is None:
        return
    check_keys(where, tuning, TUNING_KEYS, () if partial else tuple(TUNING_KEYS))
    _check_positive(where, tuning, ("epochs",))
    lrs = tuning.get("lr", [1.0])
    if not lrs or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                          for v in lrs) or lrs != sorted(set(lrs)):
        raise ParamsError(f"{where}.lr: expected increasing positive learning rates, got {lrs!r}")
    if tuning.get("widen", 0) < 0:
        raise ParamsError(f"{where}.widen: must be 0 or more, got {tuning['widen']!r}")
    if "seeds" in tuning and (not tuning["seeds"] or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in tuning["seeds"])):
        raise ParamsError(f"{where}.seeds: expected a non-empty list of integers, got "
                          f"{tuning['seeds']!r}")
    held = tuning.get("validation", 1)
    if held <= 0 or (isinstance(held, float) and held >= 1):
        raise ParamsError(f"{where}.validation: expected a count of training examples (an "
                          f"integer > 0) or a fraction in (0, 1), got {held!r}")


def _check_figures(where: str, figures: list, configs: dict) -> None:
    axes = {a for cfg in configs.values() for a in cfg["axes"]}
    for i, fig in enumerate(figures):
        check_keys(f"{where}.{i}", fig, FIGURE_KEYS, ("kind", "name"))
        choice(f"{where}.{i}.kind", fig["kind"], list(FIGURE_AXES))
        for key in FIGURE_AXES[fig["kind"]] + (("panels",) if "panels" in fig else ()):
            if key not in fig:
                raise ParamsError(f"{where}.{i}.{key}: required key is missing")
            choice(f"{where}.{i}.{key}", fig[key], sorted(axes))


def _check_profiles(where: str, spec: dict, schema: dict, lenient: bool) -> None:
    for pname, overrides in spec.get("profiles", {}).items():
        choice(f"{where}.profiles.{pname}", pname, PROFILES)
        override_schema = {k: v for k, v in schema.items() if k != "profiles"}
        check_keys(f"{where}.profiles.{pname}", overrides, override_schema,
                    allow_unknown=lenient)
        configs = (expand(f"{where}.profiles.{pname}.grids", overrides["grids"])
                   if "grids" in overrides else spec["configs"])
        if "diagnostics" in overrides:
            _check_diagnostics(f"{where}.profiles.{pname}.diagnostics",
                               overrides["diagnostics"], configs)
        for cname in overrides.get("select", []):
            choice(f"{where}.profiles.{pname}.select", cname, list(configs))
        if "tuning" in overrides:  # merged into the experiment's: any subset of the keys
            _check_tuning(f"{where}.profiles.{pname}.tuning", overrides["tuning"],
                          partial=spec.get("tuning") is not None)


def _validate_experiment(name: str, spec: dict, module=None, claims=()) -> None:
    where = f"experiments.{name}"
    schema, config_schema = dict(EXPERIMENT_KEYS), dict(CONFIG_KEYS)
    if module is not None:
        schema.update(getattr(module, "EXTRA_KEYS", {}))
        config_schema.update(getattr(module, "EXTRA_CONFIG_KEYS", {}))
    # Without the module (import_modules=False) its EXTRA_KEYS are unknown: let them pass.
    lenient = module is None
    check_keys(where, spec, schema, REQUIRED_EXPERIMENT_KEYS, allow_unknown=lenient)
    choice(f"{where}.dataset", spec["dataset"], DATASETS)
    choice(f"{where}.optimizer", spec.get("optimizer", "sgd"), OPTIMIZERS)
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
    _check_tuning(f"{where}.tuning", spec.get("tuning"))
    if "published" in spec:
        _check_published(f"{where}.published", spec["published"], spec["configs"])
    _check_profiles(where, spec, schema, lenient)
    for cname in spec.get("select", []):
        choice(f"{where}.select", cname, list(spec["configs"]))


def validate(params: dict, import_modules: bool = True) -> dict:
    """Check the whole of params.yaml; return it unchanged."""
    check_keys("params", params, TOP_KEYS, ("profile", "data", "experiments"))
    choice("profile", params["profile"], PROFILES)
    check_keys("data", params["data"], DATA_KEYS, ("ones",))
    check_keys("data.ones", params["data"]["ones"], ONES_KEYS, tuple(ONES_KEYS))
    if "ones_bnn" in params["data"]:
        check_keys("data.ones_bnn", params["data"]["ones_bnn"], ONES_BNN_KEYS,
                    tuple(ONES_BNN_KEYS))
    if "claims" in params:
        check_keys("claims", params["claims"], CLAIMS_KEYS, tuple(CLAIMS_KEYS))
        _check_positive("claims", params["claims"], ("delta",))
    try:  # where runs execute (experiments/training/executor.py); no stage's param
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

