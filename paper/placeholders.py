"""``{{key}}`` / ``{{key | format}}`` in paper.md: a value of paper/generated/numbers.yaml.

Formats: ``pct[:d]`` (0.9975 -> 99.75%, d decimals, default 1), ``pts[:d]`` (0.01 -> 1: a
fraction in points, default 0 decimals), ``pp[:d]`` (signed difference in percentage
points: +0.05), ``pm_pct[:d]`` (key of a {mean,std} pair without .mean: 99.75 ± 0.11%),
``pm[:d]``, ``f[:d]`` (fixed decimals, default 2), ``int``, ``list``, ``ids`` (names as
code in a sentence: `a`, `b` and `c`; "none" for no name), ``code`` (verbatim),
``count:<noun>[/<plural>]`` (a whole number and its noun, singular or plural: 1 experiment,
7 experiments; ``count:analysis/analyses``), ``points`` (a fraction in points with its noun:
0.01 -> 1 point, 0.02 -> 2 points).
Numbers are formatted by ``experiments.analysis.tables`` (the tables' formatter): past 10^4
in scientific notation, as maths ($1.18\\times10^{9}$).  A metric of a configuration whose
every seed diverged (no value) reads "diverged (3/3 seeds)", as in its table.  An unknown key
stops the build naming the key, the line and the file that should hold it; a key of a
configuration the profile did not run becomes "not run (profile ...)".
"""

from __future__ import annotations

import difflib
import re

import yaml

from experiments.analysis.tables import diverged, num, pm, powers
from experiments.results import paths
from paper import BuildError

PLACEHOLDER = re.compile(r"\{\{\s*([^{}|]+?)\s*(?:\|\s*([^{}]+?)\s*)?\}\}")

SOURCES = {  # key prefix -> the file the numbers stage reads it from
    "metrics": ("reports/metrics/{}.json", "dvc repro train@{}"),
    "runs": ("reports/runs/{}.json", "dvc repro train@{}"),
    "claims": ("reports/claims.json", "dvc repro"),
    "diagnostics": ("reports/diagnostics/{}.csv", "dvc repro train@{}"),
}


def load_numbers(layout: paths.Layout) -> dict:
    path = layout.numbers
    if not path.is_file():
        raise BuildError(f"missing generated file {layout.rel(path)} "
                         "(written by the DVC stage `numbers`: run `dvc repro numbers`)")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data.get("values"), dict):
        raise BuildError(f"{layout.rel(path)} has no `values` mapping; "
                         "rerun `dvc repro numbers`")
    return data


def source_of(key: str, numbers: dict) -> str:
    """The file a key should come from, for error messages."""
    parts = key.split(".")
    kind = parts[0]
    if kind in SOURCES and (kind == "claims" or len(parts) > 1):
        template, how = SOURCES[kind]
        exp = parts[1] if len(parts) > 1 else "?"
        path = template.format(exp)
        exists = (numbers.get("sources") or {}).get(kind if kind == "claims" else f"{kind}.{exp}")
        state = "read by the numbers stage" if exists else "not found by the numbers stage"
        return f"{path} ({state}; `{how.format(exp)}` writes it)"
    known = numbers.get("sources") or {}
    if kind in known:
        return f"{known[kind]} (via the numbers stage)"
    kinds = set(SOURCES) | {k.split(".")[0] for k in known}
    return ("no generated file: keys start with " + ", ".join(sorted(kinds))
            + " (see paper/generated/numbers.yaml)")


def _digits(spec: str, default: int) -> int:
    return int(spec) if spec else default


def diverged_config(key: str, values: dict) -> str | None:
    """"diverged (k/n seeds)" for a key of ``metrics.<exp>.<config>.`` when every seed of
    that configuration diverged (``runs.<exp>.configs.<config>.diverged`` of
    ``runs.<exp>.n_seeds``), else None."""
    parts = key.split(".")
    if parts[0] != "metrics" or len(parts) < 4:
        return None
    exp = parts[1]
    seeds = values.get(f"runs.{exp}.n_seeds")
    for i in range(3, len(parts)):  # a configuration's name may hold dots (noise_0.01)
        gone = values.get(f"runs.{exp}.configs.{'.'.join(parts[2:i])}.diverged")
        if gone is not None:
            return diverged(gone, seeds) if seeds and gone >= seeds else None
    return None


def format_value(key: str, fmt: str | None, values: dict) -> str:
    """The text a placeholder becomes (also used by the tests): Markdown, a power of ten
    as maths."""
    text = _format_value(key, fmt, values)
    return powers(text, "$\\times10^{{{}}}$")


def _format_value(key: str, fmt: str | None, values: dict) -> str:
    name, _, arg = (fmt or "").partition(":")
    name = name.strip()
    if name in ("pm", "pm_pct"):
        scale, unit = (100, "%") if name == "pm_pct" else (1, "")
        if values[f"{key}.mean"] is None and (gone := diverged_config(key, values)):
            return gone
        return pm(values[f"{key}.mean"], values[f"{key}.std"], scale,
                  _digits(arg, 1 if name == "pm_pct" else 2), unit=unit)
    value = values[key]
    if value is None:
        return diverged_config(key, values) or "n/a"
    numeric = {"pct": (100, 1, False, "%"), "pts": (100, 0, False, ""),
               "pp": (100, 2, True, ""), "f": (1, 2, False, "")}
    if name in numeric:
        scale, digits, signed, unit = numeric[name]
        return num(value, scale, _digits(arg, digits), signed, unit)
    if name == "" and isinstance(value, float):
        return f"{value:g}"
    if name == "ids":
        return ids(value)
    if name == "list" or (name == "" and isinstance(value, list)):
        return ", ".join(map(str, value))
    if name == "":
        return str(value)
    if name == "int":
        return f"{int(round(value)):d}"
    if name == "code":
        return f"`{value}`"
    if name == "count":
        return count(value, arg)
    if name == "points":
        points = num(value, 100, _digits(arg, 0))
        return f"{points} point{'' if float(points) == 1 else 's'}"
    raise KeyError(f"unknown format {fmt!r} (pct, pts, points, pp, pm, pm_pct, f, int, list, "
                   "ids, code, count:<noun>)")


def ids(names: list) -> str:
    """Names as code in a sentence: ```a```, ```a` and `b```, ```a`, `b` and `c```; none."""
    quoted = [f"`{n}`" for n in names]
    if not quoted:
        return "none"
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def count(value, noun: str) -> str:
    """``7 experiments``, ``1 experiment``: a whole number and ``noun`` (``singular`` or
    ``singular/plural``; the plural defaults to singular + s) in the right number."""
    if not noun.strip():
        raise ValueError("count needs a noun: count:<noun> or count:<noun>/<plural>")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(f"count needs a whole number, got {value!r}")
    one, _, many = (w.strip() for w in noun.partition("/"))
    return f"{int(value)} {one if int(value) == 1 else (many or one + 's')}"


def _needed_keys(key: str, fmt: str | None) -> list[str]:
    if fmt and fmt.split(":")[0].strip() in ("pm", "pm_pct"):
        return [f"{key}.mean", f"{key}.std"]
    return [key]


def not_run(key: str, values: dict) -> str | None:
    """The text for a key of a configuration the profile did not run (its metrics, its runs
    entry, its search, its claims row, its gradient-direction numbers), else None."""
    for name, configs in values.items():
        if not name.startswith("pipeline.not_run."):
            continue
        exp = name.removeprefix("pipeline.not_run.")
        for cfg in configs or []:
            prefixes = (f"metrics.{exp}.{cfg}.", f"runs.{exp}.{cfg}.",
                        f"runs.{exp}.configs.{cfg}.", f"runs.{exp}.tuning.arms.{cfg}.",
                        f"claims.{exp}_{cfg}.", f"diagnostics.{exp}.{cfg}.")
            if key.startswith(prefixes):
                return f"not run (profile {values.get('pipeline.profile')})"
    return None


def substitute(text: str, numbers: dict, where: str) -> str:
    values = numbers["values"]
    out = []
    for lineno, line in enumerate(text.split("\n"), 1):
        def repl(m, lineno=lineno):
            key, fmt = m.group(1).strip(), m.group(2)
            for k in _needed_keys(key, fmt):
                if k not in values and not_run(k, values):
                    return not_run(k, values)
                if k not in values:
                    close = difflib.get_close_matches(k, list(values), n=3, cutoff=0.75)
                    hint = f"; close keys: {', '.join(close)}" if close else ""
                    raise BuildError(f"{where}:{lineno}: unknown number `{k}`; it should come "
                                     f"from {source_of(k, numbers)}{hint}")
            try:
                return format_value(key, fmt, values)
            except (KeyError, TypeError, ValueError) as err:
                raise BuildError(f"{where}:{lineno}: cannot format `{key}` with "
                                 f"`{fmt}`: {err}") from err
        out.append(PLACEHOLDER.sub(repl, line))
    return "\n".join(out)
