"""From a configuration to freegrad: the rule block, its fields, stochasticity, diagnostics.

A configuration (``params.resolve(...)["configs"][name]``) names a ``forward``, a
``backward`` (a freegrad rule, or the forward's true derivative ``d(<forward>)``), its
``rule_params`` and ``scope``.  Everything the training code asks freegrad about a
configuration goes through here.

A ``rule_params`` value may be a schedule of the optimiser step (its dict spec,
``{schedule: linear, start: 1.0, end: 0.25, steps: 600}``: ``freegrad.schedules.from_spec``).
The block then has a clock (``block.clock``): ``count_steps`` attaches it to the optimiser, and
every forward binds the values of the steps taken so far; ``values_in_force`` are what a run
logs per epoch (``rule/<param>``).
"""

from __future__ import annotations

import contextlib

from experiments.config.schema import DEFAULT_SCOPE, TRUE_DERIVATIVE

RULE_FIELDS = ("forward", "forward_params", "backward", "rule_params", "scope")


def is_true_derivative(cfg: dict) -> bool:
    backward = cfg.get("backward")
    return backward in TRUE_DERIVATIVE or backward == f"d({cfg['forward']})"


def rule_fields(cfg: dict) -> dict:
    """The fields that say what the configuration computes (logged with each run)."""
    return {k: cfg[k] for k in RULE_FIELDS if k in cfg}


def is_stochastic(cfg: dict) -> bool:
    """Whether the rule draws random numbers (freegrad says so: ``fg.get(rule).stochastic``)."""
    if is_true_derivative(cfg):
        return False
    import freegrad as fg

    return bool(fg.get(cfg["backward"]).stochastic)


def rule_context(cfg: dict, seed: int | None = None):
    """The freegrad rule block for ``cfg``; a no-op for the true derivative."""
    if is_true_derivative(cfg):
        return contextlib.nullcontext()
    return rule_block(cfg, seed)


def rule_block(cfg: dict, seed: int | None = None):
    """``fg.use`` of ``cfg``'s rule, its ``rule_params`` (schedules included) and scope:
    freegrad checks them all when the block is made (``rule_context`` trains with it)."""
    import freegrad as fg

    kwargs = {"scope": cfg.get("scope", DEFAULT_SCOPE), "seed": seed}
    if cfg.get("rule_params"):
        kwargs["params"] = dict(cfg["rule_params"])
    return fg.use(cfg["backward"], **kwargs)


def scheduled(cfg: dict) -> list[str]:
    """The rule parameters of ``cfg`` that follow a schedule of the optimiser step (its
    ``rule_params``, or the rule's own defaults); none for the true derivative."""
    schedule = getattr(rule_context(cfg), "schedule", None)
    return sorted(schedule.schedules) if schedule is not None else []


def count_steps(block, optimizer) -> None:
    """Make ``block``'s schedules advance one step per ``optimizer.step()``
    (``block.clock.attach``); nothing to count for a block without a schedule."""
    if getattr(block, "schedule", None) is not None:
        block.clock.attach(optimizer)


def values_in_force(block) -> dict[str, float]:
    """``{"rule/<param>": value}``: a scheduled block's numeric parameters at its clock's step
    (``block.values()``); empty for a block without a schedule (its rows stay as they were)."""
    if getattr(block, "schedule", None) is None:
        return {}
    return {f"rule/{k}": v for k, v in block.values().items()}


def diagnosed(spec: dict, cfg: dict, cname: str, seed: int) -> bool:
    """Whether ``diagnostics`` asks for gradient-direction measurements of this run."""
    diag = spec.get("diagnostics")
    if not diag or is_true_derivative(cfg):
        return False
    return (cname in diag.get("configs", [cname])
            and seed in diag.get("seeds", spec["seeds"][:1]))


def make_diagnostics(spec: dict, cfg: dict, seed: int, model, log=None, clock=None):
    """A ``freegrad.diagnostics.GradientDiagnostics`` comparing the rule with the truth;
    ``clock``: the training block's (``block.clock``), so that scheduled parameters are
    measured at the values the training step binds."""
    from freegrad.diagnostics import GradientDiagnostics

    return GradientDiagnostics(model, cfg["backward"], dict(cfg["rule_params"]) or None,
                               cfg.get("scope", DEFAULT_SCOPE),
                               every=spec["diagnostics"]["every"], log=log, seed=seed,
                               clock=clock)


def diagnostics_rows(cname: str, seed: int, history) -> list[dict]:
    """The rows of ``reports/diagnostics/<name>.csv`` a ``GradientDiagnostics`` measured."""
    return [{"config": cname, "seed": seed, "step": step, "parameter": pname, **values}
            for step, result in history for pname, values in result.items()]
