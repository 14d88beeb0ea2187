"""The ``numbers`` stage: every number the paper may quote, in one flat file.

    python -m paper.numbers

Reads what the pipeline wrote and flattens it into dotted keys in
``paper/generated/numbers.yaml``, which the paper build (``paper.placeholders``)
substitutes into ``paper/paper.md``.  Nothing here knows about particular
experiments: a new ``reports/metrics/<exp>.json`` is picked up as it is.  Wall times:
``reports/timings/`` is machine dependent and written by the train stages; the paper may
only quote what repeats byte for byte, so the compute paragraph quotes the summed
epoch times of the committed runs (the core-hours they cost on that machine), as recorded.

    metrics.<exp>.<config>.<metric>.<mean|std|reached>   reports/metrics/<exp>.json
    runs.<exp>.{profile,title,dataset,n_configs,n_seeds,n_runs,epochs,lr,...}
    runs.<exp>.configs.<config>.{forward,backward,provenance,lr,batch_size,n_runs,
    rule_params.<p>},
    runs.<exp>.{data,tuning,published}.<...>
                                                         reports/runs/<exp>.json
    claims.<id>.<field>, claims.count (compared rows), claims.summaries,
    claims.<reading>.verdicts.<verdict> (rows per verdict, spaces as _; reading: paper,
    tuned), claims.<reading>.outcome.<verdict> (the claims with that verdict, ids; verdict
    also mixed), claims.untested (claims no configuration tested),
    claims.<reading>.untested (no row read that way: e.g. no search), claims.agree /
    claims.differ (claims read both ways whose two readings give the same / another verdict)
                                                         reports/claims.json
    compute.<exp>.{device,runs,core_hours}, compute.{runs,core_hours,devices}
                                                         reports/timings/<exp>.json
    diagnostics.<exp>.<config>.<parameter>.{first,late.{mean,max,from_step,norm_ratio,true_zero}}
                                                         reports/diagnostics/<exp>.csv
    pipeline.results_date: the date of the last commit of dvc.lock (git), the day the
                           results were committed; "results not committed" without one
    params.claims.<key>                                   params.yaml (the verdict rule)
    totals.{n_experiments,n_runs}                        all of the above
    pipeline.profile, pipeline.experiments                params.yaml
    pipeline.not_run.<exp>: configurations params.yaml declares that the profile
                            did not run (the paper says so instead of a value)

The file also maps each key prefix to the file it came from (``sources``), so a
key the paper asks for and the pipeline did not write is reported with the file
that should hold it.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas
import yaml

from experiments import config
from experiments.analysis import timings
from experiments.analysis.verdicts import MIXED, READINGS, VERDICTS
from experiments.results import files, paths
from paper import NOT_COMMITTED


def _flatten(prefix: str, obj, out: dict) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}", v, out)
    elif isinstance(obj, (list, tuple)):
        if all(not isinstance(v, (dict, list)) for v in obj):
            out[prefix] = list(obj)
            out[f"{prefix}.count"] = len(obj)
            out.update({f"{prefix}.{i}": v for i, v in enumerate(obj)})
        else:
            for i, v in enumerate(obj):
                _flatten(f"{prefix}.{i}", v, out)
    else:
        out[prefix] = obj


def _load(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise SystemExit(f"error: {path}: not valid JSON ({err})") from err


def _runs_numbers(exp: str, d: dict, out: dict) -> None:
    p = f"runs.{exp}"
    for key in ("profile", "title", "dataset", "stage"):
        if key in d:
            out[f"{p}.{key}"] = d[key]
    settings = d.get("settings", {})
    for k, v in settings.items():
        if k == "seeds":
            out[f"{p}.seeds"] = list(v)
            out[f"{p}.n_seeds"] = len(v)
        elif not isinstance(v, (dict, list)):
            out[f"{p}.{k}"] = v
        else:
            _flatten(f"{p}.{k}", v, out)
    for part in ("data", "tuning", "published"):
        if isinstance(d.get(part), dict):
            _flatten(f"{p}.{part}", d[part], out)
    configs = d.get("configs", {})
    n_runs = 0
    for cname, c in configs.items():
        cp = f"{p}.configs.{cname}"
        for key in ("forward", "backward", "provenance", "scope", "diverged", "lr",
                    "batch_size"):
            if key in c:
                out[f"{cp}.{key}"] = c[key]
        if isinstance(c.get("rule_params"), dict):
            _flatten(f"{cp}.rule_params", c["rule_params"], out)
        runs = len(c.get("runs", {}))
        out[f"{cp}.n_runs"] = runs
        n_runs += runs
    out[f"{p}.n_configs"] = len(configs)
    out[f"{p}.n_runs"] = n_runs


def _claims_numbers(layout: paths.Layout, values: dict, sources: dict) -> None:
    """claims.<id>.<field>, claims.count, claims.summaries, and per reading (paper, tuned)
    claims.<reading>.verdicts.<verdict> (rows per verdict, spaces as _)."""
    if not layout.claims_json.is_file():
        return
    claims = _load(layout.claims_json)
    sources["claims"] = layout.rel(layout.claims_json)
    for c in claims:
        for k, v in c.items():
            if k != "id":
                _flatten(f"claims.{c['id']}.{k}", v, values)
    rows = [c for c in claims if c.get("kind", "row") == "row"]
    for reading in READINGS:
        counts = Counter(str(c[reading]["verdict"]) for c in rows if c.get(reading))
        for v in (*VERDICTS, *sorted(counts)):
            values[f"claims.{reading}.verdicts.{v.replace(' ', '_')}"] = counts.get(v, 0)
    values["claims.count"] = len(rows)
    summaries = [c for c in claims if c.get("kind") == "summary"]
    values["claims.summaries"] = len(summaries)
    values["claims.untested"] = [c["claim_id"] for c in summaries if not c["rows"]]
    judged = {w: [c for c in summaries if c[w]["rows"]] for w in READINGS}  # rows read so
    both = [c for c in judged[READINGS[0]] if all(c in judged[w] for w in READINGS)]
    same = {c["claim_id"]: len({c[w]["verdict"] for w in READINGS}) == 1 for c in both}
    values["claims.agree"] = [c for c, agree in same.items() if agree]
    values["claims.differ"] = [c for c, agree in same.items() if not agree]
    for reading in READINGS:
        values[f"claims.{reading}.untested"] = [c["claim_id"] for c in summaries
                                                if c not in judged[reading]]
        for v in (*VERDICTS, MIXED):
            values[f"claims.{reading}.outcome.{v.replace(' ', '_')}"] = [
                c["claim_id"] for c in judged[reading] if c[reading]["verdict"] == v]


def _compute_numbers(layout: paths.Layout, values: dict, sources: dict) -> None:
    """compute.<exp>.{device,runs,core_hours} and their totals: the seconds of the epochs
    each train stage timed, summed over its runs, times the threads each run used."""
    stages = timings.rows(layout)
    for r in stages:
        values.update({f"compute.{r['experiment']}.device": r["device"],
                       f"compute.{r['experiment']}.runs": r["runs"],
                       f"compute.{r['experiment']}.core_hours":
                           round(timings.totals([r])["core_hours"], 3)})
    if stages:
        sources["compute"] = layout.rel(layout.timings) + "/*.json"
        t = timings.totals(stages)
        values.update({"compute.runs": t["runs"], "compute.core_hours": round(t["core_hours"], 3),
                       "compute.devices": t["devices"]})


def _diagnostics_numbers(layout: paths.Layout, values: dict, sources: dict) -> None:
    """diagnostics.<exp>.<config>.<parameter>.late.{mean,max,from_step,norm_ratio,true_zero},
    for every weight tensor and ``all`` (every parameter together):
    over the second half of the diagnosed steps (every diagnosed seed), the cosine between
    the true gradient and the rule's (mean, max), the median ratio of the rule's gradient
    norm to the true one's where the true one is not zero, and the share of steps where it
    is (the ratio infinite); .first: the cosine at the first diagnosed step (the mean over
    seeds)."""
    for path in sorted(layout.diagnostics.glob("*.csv")):
        frame = pandas.read_csv(path)
        if frame.empty:
            continue
        sources[f"diagnostics.{path.stem}"] = layout.rel(path)
        kept = frame["parameter"].eq("all") | frame["parameter"].str.endswith("weight")
        for (cfg, param), d in frame[kept].groupby(["config", "parameter"]):
            late = d[d["step"] >= d["step"].max() / 2]
            ratio = late["norm_ratio"]
            p = f"diagnostics.{path.stem}.{cfg}.{param}"
            values.update({f"{p}.late.mean": float(late["cosine"].mean()),
                           f"{p}.late.max": float(late["cosine"].max()),
                           f"{p}.late.from_step": int(late["step"].min()),
                           f"{p}.late.norm_ratio": float(ratio[ratio != math.inf].median()),
                           f"{p}.late.true_zero": float((ratio == math.inf).mean()),
                           f"{p}.first": float(d.loc[d["step"] == d["step"].min(),
                                                     "cosine"].mean())})


def results_date(layout: paths.Layout) -> str:
    """The date (YYYY-MM-DD) of the last commit that changed dvc.lock: the day the results
    the paper reports were committed; NOT_COMMITTED outside git or before that."""
    try:
        out = subprocess.run(["git", "log", "-1", "--format=%cs", "--", "dvc.lock"],
                             cwd=layout.root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return NOT_COMMITTED
    return out.stdout.strip() or NOT_COMMITTED


def collect(layout: paths.Layout = paths.LAYOUT, params: dict | None = None) -> dict:
    """{"sources": {prefix: file}, "values": {dotted key: value}} from ``layout``'s reports."""
    if params is None:
        params = config.load(layout.params, import_modules=False)
    values: dict = {
        "pipeline.profile": params["profile"],
        "pipeline.experiments": list(params["experiments"]),
        "pipeline.experiments.count": len(params["experiments"]),
    }
    sources: dict = {"pipeline": "params.yaml"}
    declared = {name: list(config.expand(f"experiments.{name}.grids", spec["grids"]))
                for name, spec in params["experiments"].items()}
    n_runs, n_exp = 0, 0
    for kind in ("metrics", "runs"):
        for path in sorted(getattr(layout, kind).glob("*.json")):
            exp = path.stem
            d = _load(path)
            sources[f"{kind}.{exp}"] = layout.rel(path)
            if kind == "metrics":
                _flatten(f"metrics.{exp}", d, values)
                n_exp += 1
            else:
                _runs_numbers(exp, d, values)
                n_runs += values[f"runs.{exp}.n_runs"]
                # declared in params.yaml but not run in this profile (`select`)
                ran = set(d.get("configs", {}))
                values[f"pipeline.not_run.{exp}"] = [c for c in declared.get(exp, [])
                                                     if c not in ran]
    _claims_numbers(layout, values, sources)
    _compute_numbers(layout, values, sources)
    _diagnostics_numbers(layout, values, sources)
    values["pipeline.results_date"] = results_date(layout)
    if isinstance(params.get("claims"), dict):
        _flatten("params.claims", params["claims"], values)
        sources["params"] = "params.yaml"
    sources["totals"] = "reports/{metrics,runs}/*.json"
    values["totals.n_experiments"] = n_exp
    values["totals.n_runs"] = n_runs
    return {"sources": sources, "values": dict(sorted(values.items()))}


def dump(numbers: dict) -> str:
    head = ("# Generated by the DVC stage `numbers` (python -m paper.numbers); do not edit.\n"
            "# Every number paper/paper.md quotes comes from here; see paper/placeholders.py.\n")
    return head + yaml.safe_dump(numbers, sort_keys=False, allow_unicode=True, width=1000)


def main(argv=None) -> int:
    numbers = collect()
    if numbers["values"]["totals.n_experiments"] == 0:
        print("error: no reports/metrics/*.json; run `dvc repro` first", file=sys.stderr)
        return 1
    files.write_text(paths.LAYOUT.numbers, dump(numbers))
    print(f"numbers: wrote {len(numbers['values'])} values to "
          f"{paths.LAYOUT.rel(paths.LAYOUT.numbers)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
