"""The ``train@<experiment>`` stage: every (configuration, seed) of one experiment.

    python -m experiments.train suc

Reads ``params.yaml`` (the active ``profile`` and ``experiments.<name>``, resolved by
``experiments.params``), trains each configuration for each seed (``experiments.run``:
one ``Run`` each, one MLflow run each; ``experiments.loop``: the training itself) and
writes, atomically, in one place (``write_outputs``):

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

These are the stage's DVC outputs.  It also writes ``reports/timings/<name>.json``: wall
time per epoch and of the stage, device and threads.  Those are machine dependent, so the
file is a side record, not a DVC output nor a dep of any stage (it would change
``dvc.lock`` on every run, and no table or paper number may quote it); git keeps it as the
record of the last run, and MLflow has the same times per run (``epoch_seconds``).

``train_limit`` / ``test_limit`` keep the first N examples (a deterministic subset, for the
quick and smoke profiles).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import torch
from tqdm import tqdm

from experiments import data as data_mod
from experiments import io, paths, runcache, tracking, units
from experiments import params as params_mod
from experiments.environment import configure_determinism, pick_device, prepare
from experiments.executor import Executor, ExecutorError
from experiments.run import CURVE_FIELDS, DIGITS, RUN_METRICS, Progress, Run
from experiments.runcache import RunCache

log = logging.getLogger("experiments.train")

DIAG_FIELDS = ["config", "seed", "step", "parameter", "cosine", "sign_agreement",
               "norm_ratio"]
SETTINGS = ("optimizer", "lr", "momentum", "batch_size", "epochs", "seeds", "target_accuracy")


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


def details_of(name: str, profile: str, spec: dict, meta: dict, runs: list[Run]) -> dict:
    """What ``reports/runs/<name>.json`` holds: settings, data, per configuration its
    fields, summary over seeds and every run's metrics."""
    task = params_mod.task_module(spec["task"])
    configs = {}
    for cname, cruns in _by_config(runs).items():
        cfg = spec["configs"][cname]
        configs[cname] = {
            **{k: cfg[k] for k in ("forward", "backward", "rule_params", "provenance")},
            "batch_size": cfg.get("batch_size", spec["batch_size"]),
            "lr": cfg.get("lr", spec["lr"]),
            **{k: cfg[k] for k in getattr(task, "EXTRA_CONFIG_KEYS", {}) if k in cfg},
            "summary": summaries(cruns),
            "diverged": sum(r.diverged for r in cruns),
            "runs": {f"seed_{r.seed}": r.record() for r in cruns},
        }
    return {"experiment": name, "stage": f"train@{name}", "profile": profile,
            "title": spec["title"], "dataset": spec["dataset"],
            "settings": {k: spec[k] for k in SETTINGS}
            | {k: spec[k] for k in ("train_limit", "test_limit") if k in spec},
            "data": meta, "configs": configs}


def timings_of(name: str, device, runs: list[Run], t_stage: float) -> dict:
    configs = {}
    for cname, cruns in _by_config(runs).items():
        times = {f"seed_{r.seed}": r.timings for r in cruns if not r.diverged}
        configs[cname] = {
            "stacked_seeds": any(r.stacked for r in cruns),
            "mean_epoch_seconds": summarize([t["mean_epoch_seconds"] for t in times.values()]),
            "runs": times,
        }
    return {"experiment": name, "device": device.type, "configs": configs,
            "stage_seconds": round(time.perf_counter() - t_stage, 3),
            "torch_threads": torch.get_num_threads()}


def summary_file(name: str, metrics: dict) -> dict:
    """The stage's DVC metrics (``reports/summary/<name>.json``): per configuration its mean
    final test accuracy, one number, under the experiment's name, so that ``dvc exp show``
    has one short column per configuration, ``<name>.<config>`` (the detail stays in
    ``reports/metrics/<name>.json``)."""
    return {name: {cname: m["final_test_acc"]["mean"] for cname, m in metrics.items()}}


MEAN_CURVE_FIELDS = ["config", "epoch", "test_acc"]


def mean_curves_text(curves_text: str) -> str:
    """The DVC plot ``reports/curves/<name>_mean.csv``: per configuration and epoch, the
    mean test accuracy over the seeds that reached that epoch, from the per-run curves
    (``reports/curves/<name>.csv``, as written: the same file gives the same means)."""
    import csv
    import io as _io

    sums: dict = {}
    for row in csv.DictReader(_io.StringIO(curves_text)):
        if row["test_acc"] not in ("", "nan"):
            sums.setdefault((row["config"], int(row["epoch"])), []).append(float(row["test_acc"]))
    rows = [{"config": c, "epoch": e, "test_acc": statistics.fmean(v)}
            for (c, e), v in sums.items()]
    return io.csv_text(rows, MEAN_CURVE_FIELDS, DIGITS)


def write_outputs(name: str, details: dict, runs: list[Run], timings: dict,
                  layout: paths.Layout = paths.LAYOUT) -> None:
    """Every file of the stage, each written atomically (DVC keeps them in place while the
    stage runs, ``persist: true``: a stage that fails leaves the previous results)."""
    metrics = metrics_file(details)
    curves = io.csv_text([row for r in runs for row in r.curve_rows()], CURVE_FIELDS, DIGITS)
    io.write_json(layout.report("metrics", name), metrics)
    io.write_json(layout.report("runs", name), details)
    io.write_text(layout.report("curves", name), curves)
    io.write_text(layout.mean_curves(name), mean_curves_text(curves))
    io.write_json(layout.report("summary", name), summary_file(name, metrics))
    io.write_text(layout.report("diagnostics", name),
                  io.csv_text([row for r in runs for row in r.diagnostics], DIAG_FIELDS,
                              DIGITS))
    io.write_json(layout.report("timings", name), timings)


def run_cache(name: str, profile: str, layout: paths.Layout) -> RunCache:
    """The stage's kept runs (``layout.run_cache()``), keyed by DVC's hashes of
    ``train@<name>``'s deps."""
    directory = layout.run_cache()
    try:
        hashes = runcache.stage_dependency_hashes(f"train@{name}")
    except Exception as e:  # no DVC repository, or a stage dvc.yaml does not define
        log.warning("run cache off for %s (its DVC stage cannot be hashed: %s); every run "
                    "is trained", name, e)
        cache = RunCache(name, {}, profile, directory)
        cache.enabled = False
        return cache
    return RunCache(name, hashes, profile, directory)


def run_experiment(name: str, params: dict | None = None, root: Path | None = None) -> dict:
    """Train every configuration and seed of ``name`` (reusing kept runs, on the executor
    of ``params``); write metrics, runs, curves, diagnostics, timings (under ``root``,
    default the repository).  Returns the details written to ``reports/runs/<name>.json``."""
    params = params if params is not None else params_mod.load()
    profile, spec = params["profile"], params_mod.resolve(params, name)
    layout = paths.Layout(root) if root is not None else paths.LAYOUT
    executor = Executor.from_params(params)
    configure_determinism()
    device = pick_device()
    t_stage = time.perf_counter()
    data = units.stage_data(spec, device, prepare)
    import freegrad as fg

    tags = {"git_commit": tracking.git_commit(), "dvc_stage": f"train@{name}",
            "freegrad_version": fg.__version__, "profile": profile, "device": device.type}
    jobs = units.jobs_of(name, profile, spec, torch.get_num_threads(), tags)
    n_runs = sum(job.n_runs for job in jobs)
    log.info("train@%s: profile=%s device=%s threads=%d runs=%d epochs=%d executor=%s", name,
             profile, device.type, torch.get_num_threads(), n_runs, spec["epochs"],
             executor.describe())
    show = sys.stderr.isatty()
    local = executor.kind == "local"
    with tqdm(total=n_runs, disable=not show, desc=name, unit="run") as bar, \
            tqdm(total=n_runs * spec["epochs"], disable=not (show and local), desc="epochs",
                 unit="epoch", position=1, leave=False) as epochs:
        train = (partial(units.train_unit, progress=Progress(epochs if show else None))
                 if local else units.train_unit)
        runs = units.run_all(jobs, run_cache(name, profile, layout), executor, train,
                             bar if show else None)
    details = details_of(name, profile, spec, data["meta"], runs)
    write_outputs(name, details, runs, timings_of(name, device, runs, t_stage), layout)
    return details


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Train one experiment (a DVC train stage)")
    parser.add_argument("experiment", help="a key of `experiments` in params.yaml")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    for noisy in ("mlflow", "alembic", "sqlalchemy", "urllib3", "distributed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    tracking.install_signal_handlers()
    try:
        params = params_mod.load()
        params_mod.resolve(params, args.experiment)
        run_experiment(args.experiment, params)
    except (params_mod.ParamsError, data_mod.DataError, tracking.TrackingError,
            ExecutorError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
