"""What the tables show: cells (text) built from the JSON the stages write, and the one
number formatter.  Rendered as Markdown by the ``report`` and ``claims`` stages and as
LaTeX by the paper (``paper.latex``): the cells are made here only.

* ``num`` / ``pm`` - a number, or "mean ± std", scaled (100 for %), with fixed decimals;
  "n/a" for a missing value (a diverged configuration).
* ``experiment_table(metrics, details)`` - one row per configuration of
  ``reports/metrics/<exp>.json`` + ``reports/runs/<exp>.json``; ``caption(details)``.
* ``claims_summary(rows)`` / ``claims_pairs(rows)`` - the claims stage's
  ``reports/claims.json``: one row per claim, and every compared pair grouped by claim.
"""

from __future__ import annotations

import json

from experiments import paths

PM = "±"


def num(value, scale: float = 1.0, digits: int = 2, signed: bool = False, unit: str = "") -> str:
    """``value * scale`` with ``digits`` decimals (a sign when ``signed``); "n/a" for None."""
    if value is None:
        return "n/a"
    return f"{value * scale:{'+' if signed else ''}.{digits}f}{unit}"


def pm(mean, std, scale: float = 1.0, digits: int = 2, signed: bool = False,
       unit: str = "") -> str:
    """"mean ± std" (``num`` of each); "n/a" when there is no mean."""
    if mean is None:
        return "n/a"
    return f"{num(mean, scale, digits, signed)} {PM} {num(std, scale, digits)}{unit}"


def _pm(summary: dict | None, scale: float = 1.0, digits: int = 2) -> str:
    return pm(None, None) if summary is None else pm(summary["mean"], summary["std"], scale,
                                                     digits)


def _varies(details: dict, key: str) -> bool:
    return len({c.get(key, details["settings"][key]) for c in details["configs"].values()}) > 1


def _rule(c: dict) -> str:
    params = ", ".join(f"{k}={v}" for k, v in c["rule_params"].items())
    return c["backward"] + (f"({params})" if params else "")


def experiment_table(metrics: dict, details: dict) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of an experiment's table: mean ± std over seeds per configuration."""
    st = details["settings"]
    n_seeds = len(st["seeds"])
    per_config = [k for k in ("batch_size", "lr") if _varies(details, k)]
    header = ["Configuration", "Forward / backward",
              *({"batch_size": "Batch", "lr": "LR"}[k] for k in per_config),
              "Final test acc. (%)", "Best test acc. (%)", "Final train loss",
              "Final test loss", f"Epochs to {st['target_accuracy'] * 100:g}% test acc.",
              "Seeds", "Provenance"]
    rows = []
    for cname, c in details["configs"].items():
        s = metrics[cname]
        reach = _pm(s["epochs_to_target"], digits=1)
        if s["epochs_to_target"]["reached"] < n_seeds:
            reach += f" ({s['epochs_to_target']['reached']}/{n_seeds} seeds)"
        diverged = f" (diverged: {c['diverged']}/{n_seeds} seeds)" if c.get("diverged") else ""
        rows.append([cname + diverged, f"{c['forward']} / {_rule(c)}",
                     *(str(c[k]) for k in per_config),
                     _pm(s["final_test_acc"], 100), _pm(s["best_test_acc"], 100),
                     _pm(s["final_train_loss"], digits=4), _pm(s["final_test_loss"], digits=4),
                     reach, str(n_seeds), c["provenance"]])
    return header, rows


def caption(details: dict) -> str:
    """Where an experiment's table comes from: settings, profile and files."""
    st, name = details["settings"], details["experiment"]
    limits = "".join(f", first {st[k]} {k.split('_')[0]} examples" for k in
                     ("train_limit", "test_limit") if k in st)
    return (f"{details['title']}. Profile `{details['profile']}`, dataset `{details['dataset']}`"
            f"{limits}, {st['optimizer'].upper()} lr={st['lr']} batch={st['batch_size']}"
            + (f" momentum={st['momentum']}" if st.get("momentum") else "") +
            f", {st['epochs']} epochs, seeds {st['seeds']}; mean {PM} std (n-1) over seeds. "
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


VERDICTS = ("supported", "not supported", "inconclusive")


def claims_summary(items: list[dict]) -> tuple[list[str], list[list[str]]]:
    """One row per claim: words, experiments, rows, counts per verdict, worst difference."""
    header = ["Claim", "Experiments", "Rows", "S / N / I", "Worst diff. (pts)", "Verdict"]
    rows = [[c["claim"], c["experiment"], str(c["rows"]),
             " / ".join(str(c["counts"][v]) for v in VERDICTS),
             num(c["worst_diff"], 100, signed=True), c["verdict"]]
            for c in items if c["kind"] == "summary"]
    return header, rows


def claims_pairs(items: list[dict]) -> tuple[list[str], dict[str, list[list[str]]]]:
    """Every compared pair (and aggregate), grouped by claim id: (header, {claim: rows})."""
    header = ["Row", "Baseline", "Configuration", "Baseline (%)", "Configuration (%)",
              "Diff. (pts)", "Seeds", "Verdict"]
    groups: dict = {c["claim_id"]: [] for c in items if c["kind"] == "summary"}
    for c in items:
        if c["kind"] != "summary":
            groups[c["claim_id"]].append([
                f"`{c['id']}`", c["baseline"], c["config"],
                pm(c["baseline_mean"], c["baseline_std"], 100),
                pm(c["config_mean"], c["config_std"], 100),
                pm(c["diff_mean"], c["diff_std"], 100, signed=True),
                str(c["n_seeds"]), c["verdict"]])
    return header, groups


def markdown(header: list[str], rows: list[list[str]], caption: str | None = None) -> str:
    """A Markdown table (the caption as an HTML comment above it)."""
    lines = [f"<!-- {caption} -->", ""] if caption else []
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
