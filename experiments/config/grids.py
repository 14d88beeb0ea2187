"""Grid expansion: an experiment's ``grids`` into its configurations, each with its fields
(forward, backward, rule_params, provenance, batch_size / lr / d when set) and its structure:
``axes`` (axis -> value), ``baseline`` (the axis values that pick its baseline), ``claims``
(the claims it tests) and ``aggregate`` (an axis to aggregate claims over)."""

from __future__ import annotations

import copy
import itertools

from experiments.config.schema import (
    CONFIG_KEYS,
    GRID_KEYS,
    REQUIRED_GRID_KEYS,
    ParamsError,
    check_keys,
    message,
)


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
        raise ParamsError(f"{where}: cannot fill {template!r} ({message(e)}); it may name "
                          + ", ".join(sorted(names))) from None


def _grid_configs(where: str, grid: dict) -> list[tuple[str, dict]]:
    """The configurations of one grid, as (name, fields + structure), in product order."""
    check_keys(where, grid, {**GRID_KEYS, **CONFIG_KEYS}, REQUIRED_GRID_KEYS,
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

