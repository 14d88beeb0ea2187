"""The ``claims`` stage: the paper's claims judged from the DVC metrics.

    python -m experiments.claims

Reads ``reports/metrics/<experiment>.json`` (mean and std over seeds per
configuration), ``reports/runs/<experiment>.json`` (seeds, profile) and the
``claims`` section of params.yaml, and writes

* ``reports/claims.json`` - a list of objects, one per (alternative rule,
  true-derivative baseline) pair, with ``id, claim, experiment, baseline, config,
  metric, baseline_mean, baseline_std, config_mean, config_std, diff_mean`` (the
  difference of the means), ``diff_std`` (its spread), ``n_seeds, verdict`` (plus
  ``claim_id``, ``kind``); ``kind: aggregate`` objects for a grid with ``aggregate``;
  then one ``kind: summary`` object per claim (``id`` = ``claim_<name>``) with
  ``worst_diff``, the lowest difference of its rows;
* ``reports/claims.md`` - the same, readable.

Nothing here is typed by hand: every number comes from a metrics file, every
verdict from ``verdict`` below (the rule is stated in params.yaml and in the
Markdown), every pairing from the configurations' ``baseline`` and ``claims`` in
params.yaml (never from their names).  A configuration missing from the metrics (not
run in this profile) gives no row.
"""

from __future__ import annotations

import json
import math
import sys

from experiments import io, paths, tables
from experiments import params as params_mod

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, MIXED = ("supported", "not supported", "inconclusive",
                                                  "mixed")
DIGITS = 6

def pairs(experiment: str, spec: dict, present) -> list[dict]:
    """The (row id, claim, baseline, config) pairs of an experiment's configurations that
    were run (``present``): each configuration that names ``claims`` against the baseline
    its grid's ``baseline`` picks (``params.baseline_of``), by axis values."""
    out = []
    for cname, cfg in spec["configs"].items():
        base = params_mod.baseline_of(cname, spec)
        if base is None or cname not in present or base not in present:
            continue
        for claim in cfg["claims"]:
            suffix = f"_{claim}" if len(cfg["claims"]) > 1 else ""
            out.append({"id": f"{experiment}_{cname}{suffix}", "claim_id": claim,
                        "experiment": experiment, "baseline": base, "config": cname,
                        "axes": cfg["axes"], "aggregate": cfg["aggregate"],
                        "baseline_axes": spec["configs"][base]["axes"]})
    return out


def verdict(diff: float, spread: float, tolerance: float, k_std: float,
            baseline: float | None = None, min_baseline: float = 0.0) -> str:
    """supported: no worse than the baseline by more than ``tolerance``; not supported:
    worse by more than max(tolerance, k_std * spread); inconclusive: in between, or when
    the baseline itself did not learn (mean below ``min_baseline``)."""
    if baseline is not None and baseline < min_baseline:
        return INCONCLUSIVE
    if diff >= -tolerance:
        return SUPPORTED
    if diff < -max(tolerance, k_std * spread):
        return NOT_SUPPORTED
    return INCONCLUSIVE


def summary_verdict(verdicts: list[str]) -> str:
    judged = [v for v in verdicts if v in (SUPPORTED, NOT_SUPPORTED)]
    if not judged:
        return INCONCLUSIVE
    if all(v == SUPPORTED for v in judged):
        return SUPPORTED
    if all(v == NOT_SUPPORTED for v in judged):
        return NOT_SUPPORTED
    return MIXED


def _r(x):
    return None if x is None else round(x, DIGITS)


def _row(p: dict, b: dict, c: dict, settings: dict, n_seeds) -> dict:
    """One compared pair: baseline summary ``b``, configuration summary ``c``."""
    # rounded as the metrics are, so a diff of exactly -tolerance counts as within it
    diff = round(c["mean"] - b["mean"], DIGITS)
    spread = round(math.hypot(b["std"] or 0.0, c["std"] or 0.0), DIGITS)
    agg = p["aggregate"]
    return {"id": p["id"], "claim": settings["statements"][p["claim_id"]],
            "experiment": p["experiment"], "baseline": p["baseline"], "config": p["config"],
            "metric": settings["metric"], "baseline_mean": b["mean"], "baseline_std": b["std"],
            "config_mean": c["mean"], "config_std": c["std"], "diff_mean": _r(diff),
            "diff_std": _r(spread), "n_seeds": n_seeds,
            "verdict": _verdict(diff, spread, b["mean"], settings),
            "claim_id": p["claim_id"], "kind": "row",
            **({agg: p["axes"][agg], "_pair": p} if agg else {})}


def _verdict(diff: float, spread: float, baseline: float, settings: dict) -> str:
    return verdict(diff, spread, settings["tolerance"], settings["k_std"], baseline,
                   settings.get("min_baseline", 0.0))


def judge(metrics: dict, runs: dict, settings: dict, specs: dict) -> list[dict]:
    """Every row and claim summary, from ``metrics[exp]`` and ``runs[exp]`` (parsed JSON)
    and ``specs[exp]`` (the resolved experiment: its configurations' structure)."""
    metric = settings["metric"]
    rows = []
    for exp in metrics:
        n_seeds = len(runs[exp]["settings"]["seeds"]) if exp in runs else None
        exp_rows = []
        for p in pairs(exp, specs[exp], metrics[exp]):
            b, c = metrics[exp][p["baseline"]][metric], metrics[exp][p["config"]][metric]
            if b["mean"] is not None and c["mean"] is not None:
                exp_rows.append(_row(p, b, c, settings, n_seeds))
        rows += exp_rows + _aggregates(exp_rows, settings)
    for r in rows:
        r.pop("_pair", None)
    return rows + [_summary(name, words, rows, metric)
                   for name, words in settings["statements"].items()]


def _summary(name: str, words: str, rows: list[dict], metric: str) -> dict:
    members = [r for r in rows if r["claim_id"] == name and r["kind"] == "row"]
    return {
        "id": f"claim_{name}", "claim": words,
        "experiment": ", ".join(dict.fromkeys(r["experiment"] for r in members)),
        "baseline": "true derivative", "config": ", ".join(r["id"] for r in members),
        "metric": metric, "worst_diff": _r(min((r["diff_mean"] for r in members), default=None)),
        "verdict": summary_verdict([r["verdict"] for r in members]),
        "claim_id": name, "kind": "summary", "rows": len(members),
        "counts": {v: sum(r["verdict"] == v for r in members)
                   for v in (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)}}


def _others(axes: dict, agg: str) -> str:
    return "_".join(str(v) for k, v in axes.items() if k != agg)


def _aggregates(rows: list[dict], settings: dict) -> list[dict]:
    """Rows of a grid with ``aggregate: <axis>``, grouped by their other axis values: the
    mean of the per-value means and differences; stds are the root mean square of theirs."""
    groups: dict = {}
    for r in rows:
        if "_pair" in r:
            p = r["_pair"]
            groups.setdefault((p["claim_id"], _others(p["axes"], p["aggregate"])), []).append(r)
    return [_aggregate(group, settings) for group in groups.values()]


def _aggregate(group: list[dict], settings: dict) -> dict:
    p = group[0]["_pair"]
    agg = p["aggregate"]

    def mean(key):
        return sum(r[key] for r in group) / len(group)

    def rms(key):
        return math.sqrt(sum((r[key] or 0.0) ** 2 for r in group) / len(group))

    diff, spread = round(mean("diff_mean"), DIGITS), round(rms("diff_std"), DIGITS)
    return {**group[0], "id": f"{p['experiment']}_{_others(p['axes'], agg)}",
            "baseline": f"{_others(p['baseline_axes'], agg)} (every {agg})",
            "config": f"{_others(p['axes'], agg)} (every {agg})",
            "baseline_mean": _r(mean("baseline_mean")), "baseline_std": _r(rms("baseline_std")),
            "config_mean": _r(mean("config_mean")), "config_std": _r(rms("config_std")),
            "diff_mean": _r(diff), "diff_std": _r(spread),
            "verdict": _verdict(diff, spread, mean("baseline_mean"), settings),
            "kind": "aggregate", agg: [r[agg] for r in group]}


def to_markdown(rows: list[dict], settings: dict, profiles: dict) -> str:
    tol, k, metric = settings["tolerance"], settings["k_std"], settings["metric"]
    floor = settings.get("min_baseline", 0.0)
    lines = [
        "# The paper's claims, judged from the metrics",
        "",
        "<!-- Generated by DVC stage `claims` (experiments/claims.py) from reports/metrics/*.json "
        "and reports/runs/*.json; do not edit. -->",
        "",
        f"Metric: `{metric}` (mean ± std over seeds, in %). diff = configuration − "
        "true-derivative baseline; its spread is sqrt(std_config² + std_baseline²).",
        "",
        f"Verdict rule (params.yaml `claims`): **supported** if diff ≥ −{tol * 100:g} points "
        f"(tolerance); **not supported** if diff < −max({tol * 100:g} points, {k:g} × spread); "
        f"**inconclusive** otherwise, and whenever the baseline did not learn (mean below "
        f"{floor * 100:g}%). A claim is supported (not supported) when every judged row "
        "is, **mixed** when its rows disagree, inconclusive when no row could be judged. "
        "A grid with `aggregate` (BNN: over d) also gets one row per its other axis values "
        "(mean of the per-value values, RMS of the stds; not counted in the summary). Worst "
        "diff.: the lowest difference of a claim's rows.",
        "",
        "Profiles: " + ", ".join(f"`{e}`: {p}" for e, p in profiles.items()) + ".",
        "",
        tables.markdown(*tables.claims_summary(rows)),
    ]
    header, groups = tables.claims_pairs(rows)
    for summ in (r for r in rows if r["kind"] == "summary"):
        lines += [f"## `{summ['id']}`: {summ['verdict']}", "", summ["claim"], ""]
        if not groups[summ["claim_id"]]:
            lines += ["No configuration testing it was run in this profile.", ""]
            continue
        c = summ["counts"]
        lines += [tables.markdown(header, groups[summ["claim_id"]]),
                  f"{summ['rows']} rows: {c[SUPPORTED]} supported, {c[NOT_SUPPORTED]} not "
                  f"supported, {c[INCONCLUSIVE]} inconclusive.", ""]
    return "\n".join(lines)


def load_reports(layout: paths.Layout = paths.LAYOUT, experiments=None) -> tuple[dict, dict]:
    """(metrics, runs) per experiment, from ``layout``'s reports/metrics and reports/runs."""
    metrics, runs = {}, {}
    for path in sorted(layout.metrics.glob("*.json")):
        name = path.stem
        if experiments is not None and name not in experiments:
            continue
        metrics[name] = json.loads(path.read_text())
        rpath = layout.report("runs", name)
        if rpath.is_file():
            runs[name] = json.loads(rpath.read_text())
    return metrics, runs


def main() -> int:
    params = params_mod.load(import_modules=False)
    settings = params["claims"]
    order = list(params["experiments"])
    metrics, runs = load_reports(experiments=order)
    metrics = {k: metrics[k] for k in order if k in metrics}
    if not metrics:
        print("error: no metrics found in reports/metrics/", file=sys.stderr)
        return 1
    specs = {e: params_mod.resolve(params, e, runs[e]["profile"] if e in runs else None)
             for e in metrics}
    rows = judge(metrics, runs, settings, specs)
    profiles = {e: runs[e]["profile"] for e in metrics if e in runs}
    io.write_json(paths.CLAIMS_JSON, rows)
    io.write_text(paths.CLAIMS_MD, to_markdown(rows, settings, profiles))
    for r in rows:
        if r["kind"] == "summary":
            print(f"claims: {r['id']}: {r['verdict']} ({r['rows']} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
