"""What a configuration is compared with: the reference its grid's ``baseline`` picks (axis
values), and the expanded configurations shown with it (``python -m experiments.config
--show <name>``)."""

from __future__ import annotations

import yaml

from experiments.config import STRUCTURE, resolve, setting_of


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

