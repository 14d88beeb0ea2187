"""What the tables show: cells (text) built from the JSON the stages write, and the one
number formatter.  Rendered as Markdown by the ``report`` and ``claims`` stages and as
LaTeX by the paper (``paper.latex``): the cells are made here only.

* ``num`` / ``pm`` - a number, or "mean ± std", scaled (100 for %), with fixed decimals;
  past 10^4 in scientific notation (``1.18×10⁹``: ``powers`` finds the exponent, for the
  LaTeX and Markdown renderers); "n/a" for a missing value.
* ``experiment_table(metrics, details)`` - one row per configuration of
  ``reports/metrics/<exp>.json`` + ``reports/runs/<exp>.json``, a column per axis its
  rows vary (batch size, learning rate, a task's own axis such as ``d``); a configuration
  with a diverged seed reads "diverged (1/5 seeds)" in every metric cell.
  ``caption(details)``: what the rows sweep and what they hold fixed, read from the
  configurations themselves (``grid_settings``), the tuned twins' rates apart.
* ``markdown(header, rows)`` - a Markdown table.  The claims stage's tables are
  ``experiments.analysis.claims_tables``.
"""

from __future__ import annotations

import json
import math
import re

from experiments.results import paths

PM = "±"
SCIENTIFIC_FROM = 1e4  # |x| from here on: 1.18×10⁹, never a run of integer digits
_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
POWER = re.compile("×10([⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+)")  # the power of ten of a ``num`` past 10^4


def powers(text: str, template: str) -> str:
    """``text`` with each "×10⁹" of ``num`` as ``template`` makes it from the exponent (an
    int): r"\\ensuremath{{\\times10^{{{}}}}}" for LaTeX."""
    plain = str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")
    return POWER.sub(lambda m: template.format(int(m.group(1).translate(plain))), text)


def num(value, scale: float = 1.0, digits: int = 2, signed: bool = False, unit: str = "") -> str:
    """``value * scale`` with ``digits`` decimals (a sign when ``signed``); from
    ``SCIENTIFIC_FROM`` on as a mantissa of at most two decimals times a power of ten
    (1.18×10⁹); "n/a" for None."""
    if value is None:
        return "n/a"
    x, sign = value * scale, "+" if signed else ""
    if math.isfinite(x) and abs(x) >= SCIENTIFIC_FROM:
        mantissa, exponent = f"{x:{sign}.{min(digits, 2)}e}".split("e")
        return f"{mantissa}×10{str(int(exponent)).translate(_SUPERSCRIPT)}{unit}"
    return f"{x:{sign}.{digits}f}{unit}"


def pm(mean, std, scale: float = 1.0, digits: int = 2, signed: bool = False,
       unit: str = "") -> str:
    """"mean ± std" (``num`` of each); "n/a" when there is no mean."""
    if mean is None:
        return "n/a"
    return f"{num(mean, scale, digits, signed)} {PM} {num(std, scale, digits)}{unit}"


def diverged(count: int, seeds: int) -> str:
    """The cell of a metric no seed has: every seed diverged."""
    return f"diverged ({count}/{seeds} seeds)"


def _pm(summary: dict | None, scale: float = 1.0, digits: int = 2) -> str:
    return pm(None, None) if summary is None else pm(summary["mean"], summary["std"], scale,
                                                     digits)


# A configuration's fields in reports/runs/<exp>.json that are not an axis of its grid; any
# other scalar field is (a task's own, such as the binary unit's input size ``d``).
RECORD_KEYS = {"forward", "backward", "rule_params", "forward_params", "scope", "provenance",
               "tuned_from", "chance_accuracy", "summary", "diverged", "runs", "claims"}
AXES = {"batch_size": ("Batch", "batch size"), "lr": ("LR", "learning rate")}
# (column, words) of an axis in a table and its caption; other axes are named by their key
LABELS = {**AXES, "d": ("d", "input size d")}


def _axes(details: dict) -> list[str]:
    """The per-configuration settings: batch size, learning rate, then the task's own axes."""
    extra = dict.fromkeys(k for c in details["configs"].values() for k, v in c.items()
                          if k not in RECORD_KEYS and k not in AXES
                          and isinstance(v, (int, float, str)))
    return [*AXES, *extra]


def _value(details: dict, c: dict, key: str):
    return c.get(key, details["settings"].get(key))


def _varies(details: dict, key: str) -> bool:
    return len({_value(details, c, key) for c in details["configs"].values()}) > 1


def _rule(c: dict) -> str:
    params = ", ".join(f"{k}={v}" for k, v in c["rule_params"].items())
    return c["backward"] + (f"({params})" if params else "")


def _fmt(x) -> str:
    return f"{x:g}" if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)


def experiment_table(metrics: dict, details: dict) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of an experiment's table: mean ± std over seeds per configuration,
    a column per axis the rows vary.  A configuration with a diverged seed has no result
    (its surviving seeds would flatter it): it reads "diverged (k/n seeds)" in each metric
    cell.  Metrics that do carry numbers despite diverged seeds name them after the
    configuration's name."""
    st = details["settings"]
    n_seeds = len(st["seeds"])
    per_config = [k for k in _axes(details) if _varies(details, k)]
    header = ["Configuration", "Forward / backward",
              *(LABELS.get(k, (k,))[0] for k in per_config),
              "Final test acc. (%)", "Best test acc. (%)", "Final train loss",
              "Final test loss", f"Epochs to {st['target_accuracy'] * 100:g}% test acc.",
              "Seeds", "Provenance"]
    rows = []
    for cname, c in details["configs"].items():
        s, gone = metrics[cname], c.get("diverged", 0)
        if gone and s["final_test_acc"]["mean"] is None:  # no result (records.summaries)
            cells = [diverged(gone, n_seeds)] * 5
        else:
            reached = s["epochs_to_target"]["reached"]
            reach = (_pm(s["epochs_to_target"], digits=1) if reached
                     else f"not reached (0/{n_seeds} seeds)")
            if 0 < reached < n_seeds:
                reach += f" ({reached}/{n_seeds} seeds)"
            cells = [_pm(s["final_test_acc"], 100), _pm(s["best_test_acc"], 100),
                     _pm(s["final_train_loss"], digits=4), _pm(s["final_test_loss"], digits=4),
                     reach]
            if gone:
                cname += f" (diverged: {gone}/{n_seeds} seeds)"
        rows.append([cname, f"{c['forward']} / {_rule(c)}",
                     *(_fmt(_value(details, c, k)) for k in per_config),
                     *cells, str(n_seeds), c["provenance"]])
    return header, rows


def _listed(values) -> str:
    """Sorted values, "a, b, c"; a range "a–b (n values)" past six."""
    xs = sorted(set(values), key=lambda v: (isinstance(v, str), v))
    if len(xs) > 6 and all(isinstance(x, (int, float)) for x in xs):
        return f"{_fmt(xs[0])}–{_fmt(xs[-1])} ({len(xs)} values)"
    return ", ".join(map(_fmt, xs))


def _seeds(seeds: list[int]) -> str:
    s = sorted(seeds)
    run = len(s) > 2 and s == list(range(s[0], s[-1] + 1))
    return f"{len(s)} seed{'s' * (len(s) != 1)} (" + (f"{s[0]}–{s[-1]}" if run
                                                     else ", ".join(map(str, s))) + ")"


def grid_settings(details: dict) -> dict:
    """What the configurations sweep and hold fixed, from the configurations themselves:
    ``swept`` / ``fixed`` ({axis: its values} over the grid's rows, the tuned twins left
    out) and ``tuned`` (the learning rates the tuned twins' searches chose)."""
    configs = details["configs"].values()
    grid = [c for c in configs if "tuned_from" not in c] or list(configs)
    swept, fixed = {}, {}
    for k in _axes(details):
        values = [_value(details, c, k) for c in grid]
        if any(v is not None for v in values):
            (swept if len(set(values)) > 1 else fixed)[k] = values
    return {"swept": swept, "fixed": fixed,
            "tuned": [c["lr"] for c in configs if "tuned_from" in c]}


def caption(details: dict) -> str:
    """Where an experiment's table comes from: what its rows sweep, what they hold fixed
    (as the configurations have it, not the experiment's defaults), profile and files."""
    st, name = details["settings"], details["experiment"]
    grid = grid_settings(details)

    def named(k, values):
        return f"{LABELS.get(k, (k, k))[1]} {_listed(values)}"

    swept = "; ".join(named(k, v) for k, v in grid["swept"].items())
    fixed = [st["optimizer"].upper()] + [named(k, v) for k, v in grid["fixed"].items()]
    if st.get("momentum"):
        fixed.append(f"momentum {_fmt(st['momentum'])}")
    fixed += [f"{st['epochs']} epochs", _seeds(st["seeds"])]
    tuned = (f" Rows `*_tuned`: each arm at the learning rate its search chose on the "
             f"validation split ({_listed(grid['tuned'])})." if grid["tuned"] else "")
    limits = "".join(f", first {st[k]} {k.split('_')[0]} examples" for k in
                     ("train_limit", "test_limit") if k in st)
    return (f"{details['title']}." + (f" Swept: {swept}." if swept else "")
            + f" Fixed: {', '.join(fixed)}.{tuned} Profile `{details['profile']}`, dataset "
            f"`{details['dataset']}`{limits}; mean {PM} std (n-1) over seeds. "
            f"From {paths.LAYOUT.rel(paths.LAYOUT.report('metrics', name))} and "
            f"{paths.LAYOUT.rel(paths.LAYOUT.report('runs', name))} (stage `{details['stage']}`).")


def numeric_rows(metrics: dict, details: dict) -> list[dict]:
    """The CSV: one row per configuration, mean and std as numbers, with provenance."""
    rows = []
    for cname, c in details["configs"].items():
        row = {"experiment": details["experiment"], "config": cname, "forward": c["forward"],
               "backward": c["backward"], "rule_params": json.dumps(c["rule_params"]),
               "batch_size": c.get("batch_size", details["settings"]["batch_size"]),
               "lr": c.get("lr", details["settings"]["lr"])}
        for k, s in metrics[cname].items():
            row[f"{k}_mean"], row[f"{k}_std"] = s["mean"], s["std"]
        row["n_seeds"] = len(details["settings"]["seeds"])
        row["diverged_seeds"] = c.get("diverged", 0)
        row["provenance"] = c["provenance"]
        rows.append(row)
    return rows


def _error(summary: dict | None) -> dict | None:
    """Top-1 error in %, 100 (1 − accuracy), of an accuracy summary (mean and std)."""
    if summary is None or summary.get("mean") is None:
        return None
    return {"mean": round(100.0 * (1.0 - summary["mean"]), 4),
            "std": round(100.0 * (summary["std"] or 0.0), 4)}


def _published_rows(details: dict) -> list[tuple[str, float]]:
    """(configuration, its published error) for every configuration the published numbers
    name, each followed by its tuned twin where its learning-rate search chose another rate."""
    arms = details.get("tuning", {}).get("arms", {})
    out = []
    for cname, value in details["published"]["top1_error"].items():
        out.append((cname, value))
        twin = arms.get(cname, {}).get("tuned_config", cname)
        if twin != cname:
            out.append((twin, value))
    return out


def published_table(metrics: dict, details: dict) -> tuple[list[str], list[list[str]]]:
    """(header, rows): our top-1 error beside the published one (``published`` of the
    experiment in params.yaml), per configuration it names and its tuned twin. "Best epoch"
    is the lowest test error over epochs: the published protocol's (biotorch keeps the model
    with the best accuracy on the same 10k images it reports)."""
    header = ["Configuration", "Forward / backward", "LR", "Top-1 error, final (%)",
              "Top-1 error, best epoch (%)", "Published top-1 error (%)", "Seeds"]
    rows = []
    for cname, value in _published_rows(details):
        if cname not in metrics:  # not trained in this profile (a smoke profile's subset)
            rows.append([cname, "not run in this profile", "–", "–", "–", num(value), "0"])
            continue
        s, c = metrics[cname], details["configs"][cname]
        final, best = _error(s["final_test_acc"]), _error(s["best_test_acc"])
        n_seeds = len(details["settings"]["seeds"])
        ours = ([_pm(final), _pm(best)] if final is not None
                else [diverged(c.get("diverged", 0), n_seeds)] * 2)
        rows.append([cname, f"{c['forward']} / {_rule(c)}", f"{c['lr']:g}", *ours,
                     num(value), str(n_seeds)])
    return header, rows


def published_caption(details: dict) -> str:
    return f"Beside the published numbers: {details['published']['source']}"


def published_numeric(metrics: dict, details: dict) -> dict[str, dict]:
    """Per configuration the CSV's extra columns: our top-1 errors and the published one."""
    out = {}
    for cname, value in _published_rows(details):
        if cname not in metrics:
            continue
        final = _error(metrics[cname]["final_test_acc"]) or {"mean": None, "std": None}
        best = _error(metrics[cname]["best_test_acc"]) or {"mean": None, "std": None}
        out[cname] = {"top1_error_final_mean": final["mean"], "top1_error_final_std": final["std"],
                      "top1_error_best_mean": best["mean"], "top1_error_best_std": best["std"],
                      "published_top1_error": value}
    return out


def markdown(header: list[str], rows: list[list[str]], caption: str | None = None) -> str:
    """A Markdown table (the caption as an HTML comment above it)."""
    lines = [f"<!-- {caption} -->", ""] if caption else []
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
