"""The ``claims`` stage: the study's claims judged from the runs.

    python -m experiments.analysis.claims

Reads ``reports/runs/<experiment>.json`` (every seed's metrics, each configuration's chance
accuracy, the learning-rate search) and the ``claims`` section of params.yaml, and writes

* ``reports/claims.json`` - one object per row (``kind: row``): a configuration a claim is
  about against the reference its grid's ``baseline`` names (``comparisons.baseline_of``),
  with ``id, claim_id, claim, experiment, config, reference, metric, coincides_with`` and
  its two readings (``readings``): ``paper`` (both at their grid's learning rate) and
  ``tuned`` (each at the rate its search chose on the validation split; null without a
  search), each with ``config, reference, config_lr, reference_lr, seeds, n, pairing,
  config_mean, config_std, reference_mean, reference_std, diff, low, high, diverged,
  verdict`` (``verdicts``); ``kind: aggregate`` objects over a grid's ``aggregate`` axis;
  then one ``kind: summary`` object per claim (``id`` = ``claim_<name>``) with ``claim``
  (our reading of it, ``statements.<name>.reading``), ``study`` (the study's words,
  ``statements.<name>.study``), ``rows`` and per reading ``verdict, counts, worst_diff``;
* ``reports/claims.md`` - the same, readable, with the rule explained.

Rows whose configurations ran identical runs (e.g. a jamming window that never closes is
full jamming) are one row: the first keeps them, naming the others in ``coincides_with``.
Nothing here is typed by hand: every number comes from a runs file, every pairing from the
configurations' ``baseline`` and ``claims`` in params.yaml (never from their names).
"""

from __future__ import annotations

import sys

from experiments import config
from experiments.analysis import claims_tables, comparisons, readings, tables
from experiments.analysis.verdicts import READINGS, VERDICTS, summary_verdict
from experiments.results import files, paths
from experiments.results.records import read_reports


def pairs(experiment: str, spec: dict, present) -> list[dict]:
    """The (row id, claim, reference, config) pairs of an experiment's configurations that
    were run (``present``): each configuration that names ``claims`` against the reference
    its grid's ``baseline`` picks, by axis values."""
    out = []
    for cname, cfg in spec["configs"].items():
        ref = comparisons.baseline_of(cname, spec)
        if ref is None or cname not in present or ref not in present:
            continue
        for claim in cfg["claims"]:
            suffix = f"_{claim}" if len(cfg["claims"]) > 1 else ""
            out.append({"id": f"{experiment}_{cname}{suffix}", "claim_id": claim,
                        "experiment": experiment, "config": cname, "reference": ref,
                        "axes": cfg["axes"], "aggregate": cfg["aggregate"]})
    return out


def _row(p: dict, details: dict, settings: dict) -> dict:
    return {"id": p["id"], "claim_id": p["claim_id"],
            "claim": settings["statements"][p["claim_id"]]["reading"],
            "experiment": p["experiment"], "kind": "row", "config": p["config"],
            "reference": p["reference"], "metric": settings["metric"], "coincides_with": [],
            **readings.readings(details, p["config"], p["reference"], settings)}


def _merge_coinciding(rows: list[dict], details: dict) -> list[dict]:
    """``rows`` with each row whose configuration ran the very runs of an earlier row's
    (same reference) folded into that row's ``coincides_with``."""
    kept: list[dict] = []
    for row in rows:
        twin = next((k for k in kept if k["reference"] == row["reference"]
                     and readings.same_runs(details, k["config"], row["config"])), None)
        if twin is None:
            kept.append(row)
        else:
            twin["coincides_with"].append({"id": row["id"], "config": row["config"],
                                           "claim_id": row["claim_id"]})
    return kept


def _others(axes: dict, agg: str) -> str:
    return "_".join(str(v) for k, v in axes.items() if k != agg)


def _aggregates(experiment: str, found: list[dict], details: dict, settings: dict
                ) -> list[dict]:
    """Rows of a grid with ``aggregate: <axis>``, grouped by their other axis values and
    judged as one row over the group (per seed, the mean over the axis's values)."""
    groups: dict = {}
    for p in found:
        if p["aggregate"]:
            groups.setdefault((p["claim_id"], _others(p["axes"], p["aggregate"])), []).append(p)
    out = []
    for (claim, others), group in groups.items():
        agg, pair_list = group[0]["aggregate"], [(p["config"], p["reference"]) for p in group]
        out.append({"id": f"{experiment}_{others}", "claim_id": claim,
                    "claim": settings["statements"][claim]["reading"], "experiment": experiment,
                    "kind": "aggregate", "config": f"{others} (every {agg})",
                    "reference": f"{_others(group[0]['reference_axes'], agg)} (every {agg})",
                    "metric": settings["metric"], "coincides_with": [],
                    agg: [p["axes"][agg] for p in group],
                    **{w: readings.aggregated(details, pair_list, w, settings)
                       for w in READINGS}})
    return out


def _summary(name: str, statement: dict, rows: list[dict]) -> dict:
    members = [r for r in rows if r["claim_id"] == name and r["kind"] == "row"]
    out = {"id": f"claim_{name}", "claim_id": name, "claim": statement["reading"],
           "study": statement["study"], "kind": "summary",
           "experiment": ", ".join(dict.fromkeys(r["experiment"] for r in members)),
           "rows": len(members), "config": ", ".join(r["id"] for r in members),
           "folded": [c["id"] for r in rows for c in r.get("coincides_with", ())
                      if c["claim_id"] == name]}
    for which in READINGS:  # no row read this way: inconclusive, nothing counted
        judged = [r[which] for r in members if r[which] is not None]
        out[which] = {
            "verdict": summary_verdict([j["verdict"] for j in judged]),
            "counts": {v: sum(j["verdict"] == v for j in judged) for v in VERDICTS},
            "worst_diff": min((j["diff"] for j in judged), default=None),
            "rows": len(judged)}
    return out


def judge(runs: dict, settings: dict, specs: dict) -> list[dict]:
    """Every row, aggregate and claim summary, from ``runs[exp]`` (parsed runs files) and
    ``specs[exp]`` (the resolved experiment: its configurations' structure)."""
    rows = []
    for exp, details in runs.items():
        spec = specs[exp]
        found = pairs(exp, spec, details["configs"])
        for p in found:
            p["reference_axes"] = spec["configs"][p["reference"]]["axes"]
        exp_rows = _merge_coinciding([_row(p, details, settings) for p in found], details)
        rows += exp_rows + _aggregates(exp, found, details, settings)
    return rows + [_summary(name, statement, rows)
                   for name, statement in settings["statements"].items()]


def points(value: float) -> str:
    """``value`` points with its noun in the right number: 1 point, 2 points, 0.5 points."""
    return f"{value:g} point{'' if value == 1 else 's'}"


def to_markdown(rows: list[dict], settings: dict, profiles: dict) -> str:
    delta, floor = settings["delta"] * 100, settings.get("min_baseline", 0.0) * 100
    lines = [
        "# The study's claims, judged from the runs", "",
        "<!-- Generated by DVC stage `claims` (experiments/analysis/claims.py) from "
        "reports/runs/*.json; do not edit. -->", "",
        f"Metric: `{settings['metric']}`. Each row compares a configuration with the "
        "reference its claim names, read twice: **at the paper's settings** (both at their "
        "grid's learning rate) and **tuned** (each at the learning rate its search chose on "
        "the validation split; the same search for every arm). Diff: configuration − "
        "reference, difference of means over seeds in points, with its 95 % confidence "
        "interval, paired by seed where both ran the same seeds, else Welch. A diverged "
        "seed counts as a failed run at chance accuracy.", "",
        f"Verdict (params.yaml `claims`): **supported** when the interval's lower end is "
        f"≥ −{points(delta)} (equivalent or better), **not supported** when its upper end "
        f"is < −{points(delta)}, **inconclusive** otherwise, and whenever the reference "
        f"did not learn (mean below {floor:g} %). A claim is supported (not supported) "
        "when every judged row is, **mixed** when they disagree. S / N / I: rows "
        "supported / not supported / inconclusive.", "",
        "Profiles: " + ", ".join(f"`{e}`: {p}" for e, p in profiles.items()) + ".", "",
        tables.markdown(*claims_tables.claims_summary(rows))]
    header, groups = claims_tables.claims_rows(rows)
    for summ in (r for r in rows if r["kind"] == "summary"):
        lines += [f"## `{summ['id']}`", "", summ["claim"], ""]
        if groups[summ["claim_id"]]:
            lines.append(tables.markdown(header, groups[summ["claim_id"]]))
        else:
            lines += ["No configuration testing it was run in this profile.", ""]
        for folded in summ["folded"]:
            twin = next(r for r in rows if r["kind"] != "summary"
                        and folded in [c["id"] for c in r["coincides_with"]])
            lines += [f"`{folded}` ran the very runs of `{twin['id']}`: reported there.", ""]
    return "\n".join(lines)


STATEMENT_KEYS = ("study", "reading")


def check_statements(statements: dict) -> None:
    """Each claim as ``{study: the study's words, reading: what our rows test}``; else an
    error naming the claim and what it lacks or has in excess."""
    for name, statement in statements.items():
        keys = set(statement) if isinstance(statement, dict) else set()
        if keys != set(STATEMENT_KEYS) or not all(
                isinstance(statement[k], str) and statement[k].strip() for k in keys):
            raise ValueError(
                f"claims.statements.{name}: expected a mapping with the non-empty texts "
                f"{', '.join(STATEMENT_KEYS)} (the study's words, our reading), got "
                f"{statement!r}")


def main() -> int:
    params = config.load(import_modules=False)
    settings = params["claims"]
    try:
        check_statements(settings["statements"])
    except ValueError as err:
        print(f"error: params.yaml: {err}", file=sys.stderr)
        return 1
    _, runs = read_reports(experiments=list(params["experiments"]))
    runs = {k: runs[k] for k in params["experiments"] if k in runs}
    if not runs:
        print("error: no runs found in reports/runs/", file=sys.stderr)
        return 1
    specs = {e: config.resolve(params, e, runs[e]["profile"]) for e in runs}
    rows = judge(runs, settings, specs)
    files.write_json(paths.LAYOUT.claims_json, rows)
    files.write_text(paths.LAYOUT.claims_md,
                     to_markdown(rows, settings, {e: d["profile"] for e, d in runs.items()}))
    for r in rows:
        if r["kind"] == "summary":
            said = ", ".join(f"{w}: {r[w]['verdict']}" for w in READINGS if r[w])
            print(f"claims: {r['id']}: {said or 'no rows'} ({r['rows']} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
