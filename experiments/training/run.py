"""One (configuration, seed) trained as one MLflow run, returned as a ``records.Run``.

``train_runs(job, data, device)`` trains a unit's seeds on its configuration's data: stacked
when the experiment asks for it (``stack_seeds``) and ``stacked.eligible`` allows it, else one
at a time; ``train_run`` is one seed, one MLflow run (stacked seeds' rows are logged run by
run as if trained one at a time).  A diverged run ends FAILED in MLflow (tagged
``diverged``) and is returned with ``diverged_at_epoch`` and its rows so far.
"""

from __future__ import annotations

import logging
import math
import sys
import tempfile
from pathlib import Path

from experiments.results import files
from experiments.results.records import CURVE_FIELDS, DIGITS, RUN_METRICS, Run, rounded, run_metrics
from experiments.training import binding, loop, stacked, tracking

log = logging.getLogger("experiments.training")


class Progress:
    """Where a run's progress lines go: a tqdm bar when there is one, else the log."""

    def __init__(self, bar=None):
        self.bar = bar

    def say(self, msg: str, error: bool = False) -> None:
        if self.bar is not None:
            self.bar.write(msg, file=sys.stderr if error else None)
        else:
            (log.error if error else log.info)(msg)

    def advance(self) -> None:
        if self.bar is not None:
            self.bar.update(1)


def _run_params(job, seed: int, meta: dict) -> dict:
    spec = job.experiment.spec
    return {"experiment": job.experiment.name, "config": job.config, "seed": seed,
            "profile": job.experiment.profile,
            **{k: v for k, v in spec.items() if k not in ("configs", "title", "figures")},
            "batch_size": loop.setting(spec, job.cfg, "batch_size"),
            "lr": loop.setting(spec, job.cfg, "lr"),
            "rule": binding.rule_fields(job.cfg), "data": meta}


def description(experiment) -> str:
    """The MLflow experiment's description: what it reproduces and where it comes from."""
    name, spec = experiment.name, experiment.spec
    text = (f"{spec['title']}. Reproduces an experiment of Troiano et al. 2025 (arXiv "
            f"2509.07236); DVC stage train@{name}, settings in params.yaml "
            f"(experiments.{name}). One run per (configuration, seed): the tag `config` "
            "groups a configuration's seeds; final_test_acc, best_test_acc and "
            "epochs_to_target are each run's results.")
    if experiment.phase == "tuning":
        text += (" These are the stage's learning-rate search runs (experiments.<name>."
                 "tuning): configuration <config>@lr<rate>, trained on the training set less "
                 "its validation split, and their test_* metrics are measured on that "
                 "validation split, never on the test set.")
    return text


def _log_artifacts(mlrun, run: Run) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files.write_json(tmp / "metrics.json", {"config": run.config, "seed": run.seed,
                                                **run.metrics, **run.timings})
        files.write_text(tmp / "curves.csv",
                         files.csv_text(run.curve_rows(), CURVE_FIELDS, DIGITS))
        mlrun.log_artifact(tmp / "metrics.json")
        mlrun.log_artifact(tmp / "curves.csv")


def _epoch_logger(mlrun, job, seed: int, progress: Progress):
    def on_epoch(row):
        progress.say(f"{job.experiment.name} {job.config} seed={seed} epoch {row['epoch']}/"
                     f"{job.experiment.spec['epochs']} train_loss={row['train_loss']:.4f} "
                     f"test_acc={row['test_acc']:.4f} ({row['seconds']:.2f}s)")
        progress.advance()
        mlrun.log_epoch(row["epoch"], {k: row[k] for k in ("train_loss", "train_acc",
                                                           "test_loss", "test_acc")}
                        | {"epoch_seconds": row["seconds"]}
                        | {k: v for k, v in row.items() if k.startswith("rule/")})
    return on_epoch


def _train(mlrun, job, seed: int, data: dict, device, trained, progress: Progress):
    """(rows, diagnostics rows) of one run: trained here, or replayed from ``trained``."""
    on_epoch = _epoch_logger(mlrun, job, seed, progress)
    if trained is not None:
        for row in trained[1:]:
            on_epoch(row)
        return trained, []
    spec, cfg, made = job.experiment.spec, job.cfg, []  # made: the run's GradientDiagnostics

    def diagnostics(model, clock):
        made.append(binding.make_diagnostics(spec, cfg, seed, model, lambda metrics, step:
                    mlrun.log_epoch(step, {f"diag/{k}": v for k, v in metrics.items()
                                           if math.isfinite(v)}), clock))
        return made[-1]

    diagnosed = binding.diagnosed(spec, cfg, job.config, seed)
    rows = loop.fit(job.experiment.task, spec, cfg, seed, data, device, on_epoch,
                    diagnostics if diagnosed else None)
    return rows, [r for d in made for r in binding.diagnostics_rows(job.config, seed, d.history)]


def train_run(job, seed: int, data: dict, device, progress: Progress | None = None,
              trained: list[dict] | None = None) -> Run:
    """Seed ``seed`` of ``job``'s configuration on ``data``, as one MLflow run, left RUNNING
    for ``units.run_all`` to end once the run is kept (FINISHED, or FAILED when it
    diverged).  ``trained``: this seed's rows when it was trained stacked with its
    siblings."""
    progress = progress or Progress()
    name = job.experiment.tracking_name
    with tracking.start(name, f"{job.config}-seed{seed}", _run_params(job, seed, data["meta"]),
                        {**job.tags, "config": job.config, "seed": seed,
                         "phase": job.experiment.phase},
                        description(job.experiment)) as mlrun:
        try:
            rows, diag = _train(mlrun, job, seed, data, device, trained, progress)
        except loop.Diverged as e:
            mlrun.set_tag("diverged", str(e))
            progress.say(f"error: {name} {job.config} seed={seed} diverged: {e}; this run "
                         "stops (MLflow FAILED) and the configuration is reported as diverged",
                         True)
            return Run(name, job.config, seed, e.rows, dict.fromkeys(RUN_METRICS),
                       diverged_at_epoch=e.epoch, mlflow_run_id=mlrun.run_id)
        run = Run(name, job.config, seed, rows,
                  rounded(run_metrics(rows, job.experiment.spec["target_accuracy"])), diag,
                  stacked=trained is not None, mlflow_run_id=mlrun.run_id)
        mlrun.log_summary(run.metrics)
        _log_artifacts(mlrun, run)
    return run


def _stacked_rows(job, data: dict, device) -> list | None:
    """Every seed's rows trained together (``stack_seeds: true``), or None: not asked for,
    not eligible (logged), or a seed diverged (then one seed at a time reports it)."""
    spec = job.experiment.spec
    if not spec.get("stack_seeds") or len(job.seeds) < 2:
        return None
    why_not = stacked.eligible(job.experiment.task, spec, job.cfg, data["meta"])
    if why_not is not None:
        log.info("%s %s: seeds trained one at a time (%s)", job.experiment.name, job.config,
                 why_not)
        return None
    try:
        return loop.fit_seeds(job.experiment.task, spec, job.cfg, list(job.seeds), data, device)
    except loop.Diverged:
        log.info("%s %s: a seed diverged when stacked; training one seed at a time",
                 job.experiment.name, job.config)
        return None


def train_runs(job, data: dict, device, progress: Progress | None = None) -> list[Run]:
    """The seeds of ``job``: stacked when possible, else one at a time."""
    trained = _stacked_rows(job, data, device)
    return [train_run(job, seed, data, device, progress,
                      trained=None if trained is None else trained[i])
            for i, seed in enumerate(job.seeds)]
