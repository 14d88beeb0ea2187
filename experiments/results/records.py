"""What a train stage writes, and the run it writes it from.

A ``Run`` is one (configuration, seed) trained: rows per epoch, metrics, diagnostics, whether
it diverged.  ``write_outputs`` writes, atomically, every file of ``train@<name>``:

* ``reports/summary/<name>.json`` - ``{<name>: {<config>: mean final test accuracy}}`` (the
  DVC metrics: one ``dvc exp show`` column, ``<name>.<config>``, per configuration).
* ``reports/metrics/<name>.json`` - mean/std over seeds of every run metric per
  configuration, numbers only (what the tables, claims and paper read).
* ``reports/runs/<name>.json`` - settings, provenance and per-run metrics.
  Both are deterministic: two CPU runs give byte-identical files (no times).
* ``reports/curves/<name>.csv`` - per-epoch curves of every run;
  ``reports/curves/<name>_mean.csv`` their mean test accuracy per configuration (the DVC
  plot).
* ``reports/diagnostics/<name>.csv`` - gradient-direction diagnostics (cosine, sign
  agreement, norm ratio per parameter tensor against the true gradient) every few steps,
  for the configurations and seeds ``diagnostics`` names; only a header when none.
* ``reports/timings/<name>.json`` - wall time per epoch and of the stage, device and threads.
  Machine dependent, so a side record: no DVC output nor a dep of any stage (it would change
  ``dvc.lock`` on every run, and no table or paper number may quote it); git keeps it as the
  record of the last run, and MLflow has the same times per run (``epoch_seconds``).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import statistics
from dataclasses import dataclass, field

from experiments.results import files, paths

RUN_METRICS = ["final_test_acc", "best_test_acc", "final_train_loss", "final_test_loss",
               "epochs_to_target"]
CURVE_FIELDS = ["config", "seed", "epoch", "train_loss", "train_acc", "test_loss", "test_acc"]
DIGITS = 6  # rounding of floats in the metrics file
DIAG_FIELDS = ["config", "seed", "step", "parameter", "cosine", "sign_agreement",
               "norm_ratio"]
SETTINGS = ("optimizer", "lr", "momentum", "batch_size", "epochs", "seeds", "target_accuracy")
MEAN_CURVE_FIELDS = ["config", "epoch", "test_acc"]


@dataclass
class Run:
    """One (configuration, seed): per-epoch rows (epoch 0 = initial), metrics rounded to
    ``DIGITS`` (all None when it diverged), diagnostics rows, and how it was trained."""

    experiment: str
    config: str
    seed: int
    rows: list[dict]
    metrics: dict
    diagnostics: list[dict] = field(default_factory=list)
    diverged_at_epoch: int | None = None
    stacked: bool = False
    mlflow_run_id: str | None = None  # left RUNNING until the run cache keeps the run

    @property
    def diverged(self) -> bool:
        return self.diverged_at_epoch is not None

    @property
    def timings(self) -> dict:
        """Wall times (machine dependent: reports/timings and MLflow only)."""
        epoch_s = [r["seconds"] for r in self.rows[1:]]
        return {"mean_epoch_seconds": statistics.fmean(epoch_s), "epoch_seconds": epoch_s}

    def record(self) -> dict:
        """Its entry in ``reports/runs/<experiment>.json``."""
        if self.diverged:
            return {**self.metrics, "diverged_at_epoch": self.diverged_at_epoch}
        return self.metrics

    def curve_rows(self) -> list[dict]:
        return [{"config": self.config, "seed": self.seed, **r} for r in self.rows]

    def to_dict(self) -> dict:
        """Plain values (JSON and pickle), for the run cache and Dask workers."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Run:
        return cls(**d)


def run_metrics(rows: list[dict], target: float) -> dict:
    reached = [r["epoch"] for r in rows if r["test_acc"] >= target]
    return {
        "final_test_acc": rows[-1]["test_acc"],
        "best_test_acc": max(r["test_acc"] for r in rows[1:]),
        "final_train_loss": rows[-1]["train_loss"],
        "final_test_loss": rows[-1]["test_loss"],
        "epochs_to_target": reached[0] if reached else None,
    }


def rounded(d: dict) -> dict:
    return {k: round(v, DIGITS) if isinstance(v, float) else v for k, v in d.items()}


def summarize(values: list) -> dict:
    """Mean and sample std (n-1) over seeds; None values (target never reached) skipped
    and counted in ``n``."""
    vals = [v for v in values if v is not None]
    return {
        "mean": round(statistics.fmean(vals), DIGITS) if vals else None,
        "std": round(statistics.stdev(vals), DIGITS) if len(vals) > 1 else (0.0 if vals else None),
        "n": len(vals),
    }


def summaries(runs: list[Run]) -> dict:
    """Per run metric, its summary over seeds.  A configuration with a diverged seed has
    no result (mean and std None): its surviving seeds would flatter it."""
    if any(r.diverged for r in runs):
        return {k: {"mean": None, "std": None, "n": 0} for k in RUN_METRICS}
    return {k: summarize([r.metrics[k] for r in runs]) for k in RUN_METRICS}


def metrics_file(details: dict) -> dict:
    """The DVC metrics: per configuration, mean and std of each run metric."""
    out = {}
    for cname, c in details["configs"].items():
        out[cname] = {}
        for k, s in c["summary"].items():
            out[cname][k] = {"mean": s["mean"], "std": s["std"]}
            if k == "epochs_to_target":
                out[cname][k]["reached"] = s["n"]
    return out


def _by_config(runs: list[Run]) -> dict[str, list[Run]]:
    out: dict = {}
    for r in runs:
        out.setdefault(r.config, []).append(r)
    return out


def details_of(experiment, meta: dict, runs: list[Run], chance: dict,
               tuning: dict | None = None) -> dict:
    """What ``reports/runs/<name>.json`` holds for ``experiment`` (a
    ``config.Experiment``): settings, data, per configuration its fields, the accuracy a
    failed run counts as (``chance``: configuration -> chance accuracy), summary over seeds
    and every run's metrics; and the record of its learning-rate search (``tuning``), if
    any."""
    name, spec, extra = experiment.name, experiment.spec, experiment.task_config_keys
    configs = {}
    for cname, cruns in _by_config(runs).items():
        cfg = spec["configs"][cname]
        configs[cname] = {
            **{k: cfg[k] for k in ("forward", "backward", "rule_params", "provenance")},
            "batch_size": cfg.get("batch_size", spec["batch_size"]),
            "lr": cfg.get("lr", spec["lr"]),
            **{k: cfg[k] for k in (*extra, "tuned_from") if k in cfg},
            "chance_accuracy": chance[cname],
            "summary": summaries(cruns),
            "diverged": sum(r.diverged for r in cruns),
            "runs": {f"seed_{r.seed}": r.record() for r in cruns},
        }
    published = {"published": spec["published"]} if "published" in spec else {}
    return published | {"experiment": name, "stage": f"train@{name}", "profile": experiment.profile,
            "title": spec["title"], "dataset": spec["dataset"],
            "settings": {k: spec[k] for k in SETTINGS}
            | {k: spec[k] for k in ("train_limit", "test_limit") if k in spec},
            "data": meta, **({"tuning": tuning} if tuning else {}), "configs": configs}


def timings_of(name: str, device: str, threads: int, runs: list[Run], stage_seconds: float
               ) -> dict:
    """What ``reports/timings/<name>.json`` holds: wall times per run and of the stage."""
    configs = {}
    for cname, cruns in _by_config(runs).items():
        times = {f"seed_{r.seed}": r.timings for r in cruns if not r.diverged}
        configs[cname] = {
            "stacked_seeds": any(r.stacked for r in cruns),
            "mean_epoch_seconds": summarize([t["mean_epoch_seconds"] for t in times.values()]),
            "runs": times,
        }
    return {"experiment": name, "device": device, "configs": configs,
            "stage_seconds": round(stage_seconds, 3), "torch_threads": threads}


def summary_file(name: str, metrics: dict) -> dict:
    """The stage's DVC metrics (``reports/summary/<name>.json``): per configuration its mean
    final test accuracy, one number, under the experiment's name, so that ``dvc exp show``
    has one short column per configuration, ``<name>.<config>`` (the detail stays in
    ``reports/metrics/<name>.json``)."""
    return {name: {cname: m["final_test_acc"]["mean"] for cname, m in metrics.items()}}


def mean_curves_text(curves_text: str) -> str:
    """The DVC plot ``reports/curves/<name>_mean.csv``: per configuration and epoch, the
    mean test accuracy over the seeds that reached that epoch, from the per-run curves
    (``reports/curves/<name>.csv``, as written: the same file gives the same means)."""
    sums: dict = {}
    for row in csv.DictReader(io.StringIO(curves_text)):
        if row["test_acc"] not in ("", "nan"):
            sums.setdefault((row["config"], int(row["epoch"])), []).append(float(row["test_acc"]))
    rows = [{"config": c, "epoch": e, "test_acc": statistics.fmean(v)}
            for (c, e), v in sums.items()]
    return files.csv_text(rows, MEAN_CURVE_FIELDS, DIGITS)


def write_outputs(name: str, details: dict, runs: list[Run], timings: dict,
                  layout: paths.Layout = paths.LAYOUT) -> None:
    """Every file of the stage, each written atomically (DVC keeps them in place while the
    stage runs, ``persist: true``: a stage that fails leaves the previous results)."""
    metrics = metrics_file(details)
    curves = files.csv_text([row for r in runs for row in r.curve_rows()], CURVE_FIELDS, DIGITS)
    files.write_json(layout.report("metrics", name), metrics)
    files.write_json(layout.report("runs", name), details)
    files.write_text(layout.report("curves", name), curves)
    files.write_text(layout.mean_curves(name), mean_curves_text(curves))
    files.write_json(layout.report("summary", name), summary_file(name, metrics))
    files.write_text(layout.report("diagnostics", name),
                  files.csv_text([row for r in runs for row in r.diagnostics], DIAG_FIELDS,
                              DIGITS))
    files.write_json(layout.report("timings", name), timings)


def read_reports(layout: paths.Layout = paths.LAYOUT, experiments=None) -> tuple[dict, dict]:
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
