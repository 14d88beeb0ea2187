"""The ``claims`` stage: the paper's claims judged from the DVC metrics.

    python -m experiments.claims

Reads ``reports/metrics/<experiment>.json`` (mean and std over seeds per
configuration), ``reports/runs/<experiment>.json`` (seeds, profile) and the
``claims`` section of params.yaml, and writes

* ``reports/claims.json`` - a list of objects, one per (alternative rule,
  true-derivative baseline) pair, with ``id, claim, experiment, baseline, config,
  metric, baseline_mean, baseline_std, config_mean, config_std, diff_mean, diff_std,
  n_seeds, verdict`` (plus ``claim_id``, ``kind``), then one ``kind: summary`` object
  per claim (``id`` = ``claim_<name>``);
* ``reports/claims.md`` - the same, readable.

Nothing here is typed by hand: every number comes from a metrics file, every
verdict from ``verdict`` below (the rule is stated in params.yaml and in the
Markdown).  A configuration missing from the metrics (not run in this profile)
gives no row.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

from experiments import io, paths
from experiments import params as params_mod

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, MIXED = ("supported", "not supported", "inconclusive",
                                                  "mixed")
DIGITS = 6

# name -> the claim's words (Troiano et al. 2025, abstract and Secs. 4-5).
CLAIMS = {
    "constant": "A constant backward (F / 1, no activation derivative) trains as well as the "
                "true derivative.",
    "shaped": "Rectangular and triangular derivatives train as well as the true derivative.",
    "noise": "Noise on the constant backward rule does not impair training.",
    "jamming": "Randomly jammed gradients (full, positive, rectangular jamming) train "
               "LeNet-5 as well as the forward's true derivative.",
    "step": "A flat activation, the Heaviside step, becomes trainable with a surrogate "
            "backward (Step / 1, Step / rectangular) and learns about as well as a Logistic "
            "unit with its true derivative.",
}


def pairs(experiment: str, configs: list[str]) -> list[dict]:
    """The (row id, claim, baseline, config) pairs an experiment's configurations give."""
    out = []
    present = set(configs)

    def add(rid, claim, baseline, config, **extra):
        if baseline in present and config in present:
            out.append({"id": rid, "claim_id": claim, "experiment": experiment,
                        "baseline": baseline, "config": config, **extra})

    for c in configs:
        if experiment in ("suc", "mlp", "lenet") and c != "standard":
            claim = ("constant" if c == "constant" else "noise" if c.startswith("noise")
                     else "shaped")
            add(f"{experiment}_{c}", claim, "standard", c)
        elif experiment == "mlp_sweep" and c.endswith("_constant"):
            prefix = c.removesuffix("_constant")
            add(f"mlp_sweep_{prefix}", "constant", f"{prefix}_standard", c)
        elif experiment in ("cnn", "cnn_fashion") and not c.endswith("_true"):
            add(f"{experiment}_{c}", "jamming", f"{c.split('_')[0]}_true", c)
        elif experiment == "bnn" and c.startswith("step_"):
            m = re.fullmatch(r"(step_\w+)_d(\d+)", c)
            if m:
                add(f"bnn_{c}", "step", f"logistic_d{m.group(2)}", c, d=int(m.group(2)))
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


def judge(metrics: dict, runs: dict, settings: dict) -> list[dict]:
    """Every row and claim summary, from ``metrics[exp]`` and ``runs[exp]`` (parsed JSON)."""
    metric, tol, k = settings["metric"], settings["tolerance"], settings["k_std"]
    floor = settings.get("min_baseline", 0.0)
    rows = []
    for exp in metrics:
        n_seeds = len(runs[exp]["settings"]["seeds"]) if exp in runs else None
        exp_rows = []
        for p in pairs(exp, list(metrics[exp])):
            b, c = metrics[exp][p["baseline"]][metric], metrics[exp][p["config"]][metric]
            if b["mean"] is None or c["mean"] is None:
                continue
            # rounded as the metrics are, so a diff of exactly -tolerance counts as within it
            diff = round(c["mean"] - b["mean"], DIGITS)
            spread = round(math.hypot(b["std"] or 0.0, c["std"] or 0.0), DIGITS)
            exp_rows.append({
                "id": p["id"], "claim": CLAIMS[p["claim_id"]], "experiment": exp,
                "baseline": p["baseline"], "config": p["config"], "metric": metric,
                "baseline_mean": b["mean"], "baseline_std": b["std"],
                "config_mean": c["mean"], "config_std": c["std"],
                "diff_mean": _r(diff), "diff_std": _r(spread), "n_seeds": n_seeds,
                "verdict": verdict(diff, spread, tol, k, b["mean"], floor),
                "claim_id": p["claim_id"],
                "kind": "row", **({"d": p["d"]} if "d" in p else {})})
        rows += exp_rows
        if exp == "bnn":
            rows += _bnn_aggregates(exp_rows, tol, k, floor)
    for name, words in CLAIMS.items():
        members = [r for r in rows if r["claim_id"] == name and r["kind"] == "row"]
        rows.append({
            "id": f"claim_{name}", "claim": words,
            "experiment": ", ".join(dict.fromkeys(r["experiment"] for r in members)),
            "baseline": "true derivative", "config": ", ".join(r["id"] for r in members),
            "metric": metric, "baseline_mean": None, "baseline_std": None,
            "config_mean": None, "config_std": None,
            "diff_mean": _r(min((r["diff_mean"] for r in members), default=None)),
            "diff_std": None, "n_seeds": None,
            "verdict": summary_verdict([r["verdict"] for r in members]),
            "claim_id": name, "kind": "summary", "rows": len(members),
            "counts": {v: sum(r["verdict"] == v for r in members)
                       for v in (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)}})
    return rows


def _bnn_aggregates(rows: list[dict], tol: float, k: float, floor: float) -> list[dict]:
    """``bnn_step_<rule>``: over every d run, the mean of the per-d means and differences;
    stds are the root mean square of the per-d stds."""
    out = []
    for rule in dict.fromkeys(r["config"].rsplit("_d", 1)[0] for r in rows):
        group = [r for r in rows if r["config"].rsplit("_d", 1)[0] == rule]

        def mean(key, group=group):
            return sum(r[key] for r in group) / len(group)

        def rms(key, group=group):
            return math.sqrt(sum((r[key] or 0.0) ** 2 for r in group) / len(group))

        diff, spread = round(mean("diff_mean"), DIGITS), round(rms("diff_std"), DIGITS)
        ds = [r["d"] for r in group]
        out.append({**group[0], "id": f"bnn_{rule}", "baseline": "logistic_d*",
                    "config": f"{rule}_d*", "baseline_mean": _r(mean("baseline_mean")),
                    "baseline_std": _r(rms("baseline_std")), "config_mean": _r(mean("config_mean")),
                    "config_std": _r(rms("config_std")), "diff_mean": _r(diff),
                    "diff_std": _r(spread),
                    "verdict": verdict(diff, spread, tol, k, mean("baseline_mean"), floor),
                    "kind": "aggregate", "d": ds})
    return out


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
        "BNN: one row per input size d, plus an aggregate over d (mean of the per-d values, "
        "RMS of the stds; not counted in the summary).",
        "",
        "Profiles: " + ", ".join(f"`{e}`: {p}" for e, p in profiles.items()) + ".",
        "",
    ]
    for name in CLAIMS:
        summ = next(r for r in rows if r["kind"] == "summary" and r["claim_id"] == name)
        lines += [f"## `claim_{name}`: {summ['verdict']}", "", summ["claim"], ""]
        members = [r for r in rows if r["claim_id"] == name and r["kind"] != "summary"]
        if not members:
            lines += ["No configuration testing it was run in this profile.", ""]
            continue
        lines += ["| id | experiment | baseline | configuration | baseline (%) | "
                  "configuration (%) | diff (points) | seeds | verdict |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in members:
            lines.append(
                f"| `{r['id']}` | {r['experiment']} | {r['baseline']} | {r['config']} | "
                f"{r['baseline_mean'] * 100:.2f} ± {r['baseline_std'] * 100:.2f} | "
                f"{r['config_mean'] * 100:.2f} ± {r['config_std'] * 100:.2f} | "
                f"{r['diff_mean'] * 100:+.2f} ± {r['diff_std'] * 100:.2f} | {r['n_seeds']} | "
                f"{r['verdict']} |")
        c = summ["counts"]
        lines += ["", f"{summ['rows']} rows: {c[SUPPORTED]} supported, {c[NOT_SUPPORTED]} not "
                      f"supported, {c[INCONCLUSIVE]} inconclusive.", ""]
    return "\n".join(lines)


def load_reports(metrics_dir: Path = paths.METRICS, runs_dir: Path = paths.RUNS,
                 experiments=None) -> tuple[dict, dict]:
    metrics, runs = {}, {}
    for path in sorted(Path(metrics_dir).glob("*.json")):
        name = path.stem
        if experiments is not None and name not in experiments:
            continue
        metrics[name] = json.loads(path.read_text())
        rpath = Path(runs_dir) / f"{name}.json"
        if rpath.is_file():
            runs[name] = json.loads(rpath.read_text())
    return metrics, runs


def main() -> int:
    params = params_mod.load(import_modules=False)
    settings = params.get("claims", {"metric": "final_test_acc", "tolerance": 0.01,
                                     "k_std": 2.0})
    order = list(params["experiments"])
    metrics, runs = load_reports(experiments=order)
    metrics = {k: metrics[k] for k in order if k in metrics}
    if not metrics:
        print("error: no metrics found in reports/metrics/", file=sys.stderr)
        return 1
    rows = judge(metrics, runs, settings)
    profiles = {e: runs[e]["profile"] for e in metrics if e in runs}
    io.write_json(paths.CLAIMS_JSON, rows)
    io.write_text(paths.CLAIMS_MD, to_markdown(rows, settings, profiles))
    for r in rows:
        if r["kind"] == "summary":
            print(f"claims: {r['id']}: {r['verdict']} ({r['rows']} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
