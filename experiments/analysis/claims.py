"""The ``claims`` stage: the paper's claims judged from the DVC metrics.

    python -m experiments.analysis.claims

Reads ``reports/metrics/<experiment>.json`` (mean and std over seeds per
configuration), ``reports/runs/<experiment>.json`` (seeds, profile) and the
``claims`` section of params.yaml, and writes

* ``reports/claims.json`` - a list of objects, one per (alternative rule,
  true-derivative baseline) pair, with ``id, claim, experiment, baseline, config,
  metric, baseline_mean, baseline_std, config_mean, config_std, diff_mean`` (the
  difference of the means), ``diff_std`` (its spread), ``n_seeds, verdict`` (plus
  ``claim_id``, ``kind``), and the same pair judged against "our control":
  ``control`` (its name), ``control_candidates``, ``control_is_baseline``,
  ``control_mean, control_std, control_diff, control_diff_std, control_verdict``;
  ``kind: aggregate`` objects for a grid with ``aggregate``; then one ``kind: summary``
  object per claim (``id`` = ``claim_<name>``) with ``verdict``, ``counts`` (rows per
  verdict) and ``worst_diff`` (the lowest difference of its rows), and the same against
  our control: ``control_verdict``, ``control_counts``, ``control_worst_diff``, and
  ``control_not_baseline`` (rows whose control is not their baseline);
* ``reports/claims.md`` - the same, readable, with the rules explained.

Our control: the paper-setting baseline may not learn at all (LeNet-5, Logistic /
d(Logistic) at SGD lr 0.01, stays at chance), and then every row judged against it is
inconclusive.  So each row is also judged against the best of its candidates
(``comparisons.controls_of``: its baseline and the configurations that differ from it only in
a setting its grid's ``baseline`` leaves free, e.g. lenet's ``standard_lr<lr>``), by the
rule ``claims.control`` of params.yaml: ``best_mean``, the candidate present in the
metrics with the highest mean of the claims metric over seeds (ties: the earlier, the
baseline first).  It is chosen on the very seeds and test accuracy it is compared on,
which favours the control.  A row with no other candidate has its baseline as control:
both verdicts coincide.

Nothing here is typed by hand: every number comes from a metrics file, every
verdict from ``verdict`` below (the rule is stated in params.yaml and in the
Markdown), every pairing from the configurations' ``baseline`` and ``claims`` in
params.yaml (never from their names).  A configuration missing from the metrics (not
run in this profile) gives no row, and is no candidate for a control.
"""

from __future__ import annotations

import math
import sys

from experiments import config
from experiments.analysis import comparisons, tables
from experiments.analysis.verdicts import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    SUPPORTED,
    control_rule,
    pick_control,
    summary_verdict,
    verdict,
    with_mean,
)
from experiments.config import CONTROL_RULES
from experiments.results import files, paths
from experiments.results.records import DIGITS, read_reports


def pairs(experiment: str, spec: dict, present) -> list[dict]:
    """The (row id, claim, baseline, config) pairs of an experiment's configurations that
    were run (``present``): each configuration that names ``claims`` against the baseline
    its grid's ``baseline`` picks (``comparisons.baseline_of``), by axis values."""
    out = []
    for cname, cfg in spec["configs"].items():
        base = comparisons.baseline_of(cname, spec)
        if base is None or cname not in present or base not in present:
            continue
        for claim in cfg["claims"]:
            suffix = f"_{claim}" if len(cfg["claims"]) > 1 else ""
            out.append({"id": f"{experiment}_{cname}{suffix}", "claim_id": claim,
                        "experiment": experiment, "baseline": base, "config": cname,
                        "axes": cfg["axes"], "aggregate": cfg["aggregate"],
                        "baseline_axes": spec["configs"][base]["axes"]})
    return out


def _r(x):
    return None if x is None else round(x, DIGITS)


def _compare(ref: dict, c: dict) -> tuple[float, float]:
    """(difference, spread) of configuration summary ``c`` against ``ref``."""
    # rounded as the metrics are, so a diff of exactly -tolerance counts as within it
    return (round(c["mean"] - ref["mean"], DIGITS),
            round(math.hypot(ref["std"] or 0.0, c["std"] or 0.0), DIGITS))


def _row(p: dict, b: dict, c: dict, k: dict, settings: dict, n_seeds) -> dict:
    """One compared pair: baseline summary ``b``, configuration summary ``c``, and the
    summary ``k`` of our control ``p["control"]``."""
    diff, spread = _compare(b, c)
    cdiff, cspread = _compare(k, c)
    agg = p["aggregate"]
    return {"id": p["id"], "claim": settings["statements"][p["claim_id"]],
            "experiment": p["experiment"], "baseline": p["baseline"], "config": p["config"],
            "metric": settings["metric"], "baseline_mean": b["mean"], "baseline_std": b["std"],
            "config_mean": c["mean"], "config_std": c["std"], "diff_mean": _r(diff),
            "diff_std": _r(spread), "n_seeds": n_seeds,
            "verdict": _verdict(diff, spread, b["mean"], settings),
            "control": p["control"], "control_candidates": p["candidates"],
            "control_is_baseline": p["control"] == p["baseline"],
            "control_mean": k["mean"], "control_std": k["std"], "control_diff": _r(cdiff),
            "control_diff_std": _r(cspread),
            "control_verdict": _verdict(cdiff, cspread, k["mean"], settings),
            "claim_id": p["claim_id"], "kind": "row",
            **({agg: p["axes"][agg], "_pair": p} if agg else {})}


def _verdict(diff: float, spread: float, baseline: float, settings: dict) -> str:
    return verdict(diff, spread, settings["tolerance"], settings["k_std"], baseline,
                   settings.get("min_baseline", 0.0))


def judge(metrics: dict, runs: dict, settings: dict, specs: dict) -> list[dict]:
    """Every row and claim summary, from ``metrics[exp]`` and ``runs[exp]`` (parsed JSON)
    and ``specs[exp]`` (the resolved experiment: its configurations' structure)."""
    metric, rule = settings["metric"], control_rule(settings["control"])
    rows = []
    for exp in metrics:
        n_seeds = len(runs[exp]["settings"]["seeds"]) if exp in runs else None
        exp_rows = []
        for p in pairs(exp, specs[exp], metrics[exp]):
            b, c = metrics[exp][p["baseline"]][metric], metrics[exp][p["config"]][metric]
            if b["mean"] is None or c["mean"] is None:
                continue
            candidates = with_mean(comparisons.controls_of(p["config"], specs[exp]),
                                   metrics[exp], metric)
            p["candidates"] = candidates
            p["control"] = pick_control(candidates, metrics[exp], metric, rule)
            p["control_axes"] = specs[exp]["configs"][p["control"]]["axes"]
            exp_rows.append(_row(p, b, c, metrics[exp][p["control"]][metric], settings,
                                 n_seeds))
        rows += exp_rows + _aggregates(exp_rows, settings)
    for r in rows:
        r.pop("_pair", None)
    return rows + [_summary(name, words, rows, metric)
                   for name, words in settings["statements"].items()]


def _summary(name: str, words: str, rows: list[dict], metric: str) -> dict:
    members = [r for r in rows if r["claim_id"] == name and r["kind"] == "row"]

    def counts(key):
        return {v: sum(r[key] == v for r in members)
                for v in (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)}

    def worst(key):
        return _r(min((r[key] for r in members), default=None))

    return {
        "id": f"claim_{name}", "claim": words,
        "experiment": ", ".join(dict.fromkeys(r["experiment"] for r in members)),
        "baseline": "true derivative", "config": ", ".join(r["id"] for r in members),
        "metric": metric, "worst_diff": worst("diff_mean"),
        "verdict": summary_verdict([r["verdict"] for r in members]),
        "control": "our control", "control_worst_diff": worst("control_diff"),
        "control_verdict": summary_verdict([r["control_verdict"] for r in members]),
        "control_not_baseline": sum(not r["control_is_baseline"] for r in members),
        "claim_id": name, "kind": "summary", "rows": len(members),
        "counts": counts("verdict"), "control_counts": counts("control_verdict")}


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
    cdiff, cspread = round(mean("control_diff"), DIGITS), round(rms("control_diff_std"), DIGITS)
    controls = {_others(r["_pair"]["control_axes"], agg) for r in group}
    baseline = f"{_others(p['baseline_axes'], agg)} (every {agg})"
    is_baseline = all(r["control_is_baseline"] for r in group)
    control = (baseline if is_baseline else f"{controls.pop()} (every {agg})"
               if len(controls) == 1 else ", ".join(r["control"] for r in group))
    return {**group[0], "id": f"{p['experiment']}_{_others(p['axes'], agg)}",
            "baseline": baseline, "config": f"{_others(p['axes'], agg)} (every {agg})",
            "baseline_mean": _r(mean("baseline_mean")), "baseline_std": _r(rms("baseline_std")),
            "config_mean": _r(mean("config_mean")), "config_std": _r(rms("config_std")),
            "diff_mean": _r(diff), "diff_std": _r(spread),
            "verdict": _verdict(diff, spread, mean("baseline_mean"), settings),
            "control": control,
            "control_candidates": list(dict.fromkeys(
                c for r in group for c in r["control_candidates"])),
            "control_is_baseline": is_baseline,
            "control_mean": _r(mean("control_mean")), "control_std": _r(rms("control_std")),
            "control_diff": _r(cdiff), "control_diff_std": _r(cspread),
            "control_verdict": _verdict(cdiff, cspread, mean("control_mean"), settings),
            "kind": "aggregate", agg: [r[agg] for r in group]}


def _other_candidates(rows: list[dict]) -> str:
    """The candidates for our control besides the baselines, per experiment, in words."""
    found: dict = {}
    for r in rows:
        if r["kind"] == "row":
            found.setdefault(r["experiment"], {}).update(
                dict.fromkeys(c for c in r["control_candidates"] if c != r["baseline"]))
    named = [f"`{e}`: " + ", ".join(f"`{c}`" for c in cs) for e, cs in found.items() if cs]
    return ("Candidates other than baselines in these metrics: " + "; ".join(named) + "."
            if named else "These metrics hold no candidate other than the baselines.")


def _preamble(rows: list[dict], settings: dict, profiles: dict) -> list[str]:
    """The title, the verdict rule, our control explained, the profiles, the summary table."""
    tol, k, metric = settings["tolerance"], settings["k_std"], settings["metric"]
    floor = settings.get("min_baseline", 0.0)
    lines = [
        "# The paper's claims, judged from the metrics",
        "",
        "<!-- Generated by DVC stage `claims` (experiments/analysis/claims.py) from "
        "reports/metrics/*.json "
        "and reports/runs/*.json; do not edit. -->",
        "",
        f"Metric: `{metric}` (mean ± std over seeds, in %). diff = configuration − "
        "true-derivative baseline (or − our control); its spread is "
        "sqrt(std_config² + std_baseline²).",
        "",
        f"Verdict rule (params.yaml `claims`): **supported** if diff ≥ −{tol * 100:g} points "
        f"(tolerance); **not supported** if diff < −max({tol * 100:g} points, {k:g} × spread); "
        f"**inconclusive** otherwise, and whenever the baseline did not learn (mean below "
        f"{floor * 100:g}%). A claim is supported (not supported) when every judged row "
        "is, **mixed** when its rows disagree, inconclusive when no row could be judged. "
        "A grid with `aggregate` (BNN: over d) also gets one row per its other axis values "
        "(mean of the per-value values, RMS of the stds; not counted in the summary). Worst "
        "diff.: the lowest difference of a claim's rows. S / N / I: rows supported / not "
        "supported / inconclusive.",
        "",
        f"**Our control** (params.yaml `claims.control: {settings['control']}`). The "
        "study's settings can leave the true-derivative baseline at chance (LeNet-5 with "
        "Logistic / d(Logistic) at the paper's SGD settings does), and a row judged "
        "against a baseline that did not learn is inconclusive whatever its rule does. "
        "So every row is judged twice, by the same verdict rule: against its baseline, "
        "and against *our control*. A row's candidates are its baseline and the "
        "configurations that differ from it only in a setting its grid's `baseline` "
        "leaves free (the same model and true derivative, e.g. at another learning "
        f"rate); of those in the metrics, our control is the one with the highest mean "
        f"`{metric}` over seeds (`{settings['control']}`: "
        f"{CONTROL_RULES[settings['control']]}; a tie goes to the baseline). It is "
        "chosen on the same seeds' test accuracy that it is then compared on (there is "
        "no validation split), which favours our control: a rule supported against it "
        "held its own against the best of several true-derivative runs, one not "
        "supported against it may have lost to a lucky pick. Where a row has no other "
        "candidate in the metrics, or the baseline is the best, our control is the "
        "baseline itself and the two verdicts coincide (column *Our control*: \"the "
        "baseline\"). " + _other_candidates(rows),
        "",
        "Profiles: " + ", ".join(f"`{e}`: {p}" for e, p in profiles.items()) + ".",
        "",
        tables.markdown(*tables.claims_summary(rows)),
    ]
    return lines


def _claim_sections(rows: list[dict]) -> list[str]:
    """One section per claim: its verdicts, its rows' table and their counts."""
    lines: list[str] = []
    header, groups = tables.claims_pairs(rows)
    for summ in (r for r in rows if r["kind"] == "summary"):
        lines += [f"## `{summ['id']}`: {summ['verdict']} (against {tables.CONTROL}: "
                  f"{summ['control_verdict']})", "", summ["claim"], ""]
        if not groups[summ["claim_id"]]:
            lines += ["No configuration testing it was run in this profile.", ""]
            continue
        c, cc = summ["counts"], summ["control_counts"]
        other = summ["control_not_baseline"]
        lines += [tables.markdown(header, groups[summ["claim_id"]]),
                  f"{summ['rows']} rows: {c[SUPPORTED]} supported, {c[NOT_SUPPORTED]} not "
                  f"supported, {c[INCONCLUSIVE]} inconclusive. Against {tables.CONTROL}: "
                  f"{cc[SUPPORTED]} supported, {cc[NOT_SUPPORTED]} not supported, "
                  f"{cc[INCONCLUSIVE]} inconclusive; "
                  + (f"{tables.CONTROL} is another configuration than the baseline in "
                     f"{other} of {summ['rows']} rows." if other else
                     f"{tables.CONTROL} is the baseline in every row (the verdicts "
                     "coincide)."), ""]
    return lines


def to_markdown(rows: list[dict], settings: dict, profiles: dict) -> str:
    return "\n".join(_preamble(rows, settings, profiles) + _claim_sections(rows))


def main() -> int:
    params = config.load(import_modules=False)
    settings = params["claims"]
    order = list(params["experiments"])
    metrics, runs = read_reports(experiments=order)
    metrics = {k: metrics[k] for k in order if k in metrics}
    if not metrics:
        print("error: no metrics found in reports/metrics/", file=sys.stderr)
        return 1
    specs = {e: config.resolve(params, e, runs[e]["profile"] if e in runs else None)
             for e in metrics}
    try:
        rows = judge(metrics, runs, settings, specs)
    except config.ParamsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    profiles = {e: runs[e]["profile"] for e in metrics if e in runs}
    files.write_json(paths.LAYOUT.claims_json, rows)
    files.write_text(paths.LAYOUT.claims_md, to_markdown(rows, settings, profiles))
    for r in rows:
        if r["kind"] == "summary":
            print(f"claims: {r['id']}: {r['verdict']}, against {tables.CONTROL}: "
                  f"{r['control_verdict']} ({r['rows']} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
