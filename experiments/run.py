"""A run is a value: one (configuration, seed) trained, tracked in MLflow, returned as a ``Run``.

``train_one(experiment, spec, config, seed, data, device)`` trains one configuration of a
resolved experiment (``params.resolve``) for one seed, on that configuration's data, as one
MLflow run, and returns a ``Run``: rows per epoch, metrics, timings, diagnostics, whether it
diverged.  Its inputs are plain values (names, dicts, tensors), so a run can be sent to a
worker as it is.  ``train_stacked`` trains a configuration's seeds together when the
experiment asks for it (``stack_seeds``) and ``stacked.eligible`` allows it; their rows are
then logged run by run as if trained one at a time.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from experiments import io, loop, rules, stacked, tracking
from experiments import params as params_mod

log = logging.getLogger("experiments.train")

RUN_METRICS = ["final_test_acc", "best_test_acc", "final_train_loss", "final_test_loss",
               "epochs_to_target"]
CURVE_FIELDS = ["config", "seed", "epoch", "train_loss", "train_acc", "test_loss", "test_acc"]
DIGITS = 6  # rounding of floats in the metrics file


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


def _run_params(experiment: str, spec: dict, cname: str, seed: int, meta: dict,
                profile: str) -> dict:
    cfg = spec["configs"][cname]
    return {"experiment": experiment, "config": cname, "seed": seed, "profile": profile,
            **{k: v for k, v in spec.items() if k not in ("configs", "title", "figures")},
            "batch_size": loop.setting(spec, cfg, "batch_size"),
            "lr": loop.setting(spec, cfg, "lr"), "rule": rules.rule_fields(cfg), "data": meta}


def description(experiment: str, spec: dict) -> str:
    """The MLflow experiment's description: what it reproduces and where it comes from."""
    return (f"{spec['title']}. Reproduces an experiment of Troiano et al. 2025 (arXiv "
            f"2509.07236); DVC stage train@{experiment}, settings in params.yaml "
            f"(experiments.{experiment}). One run per (configuration, seed): the tag `config` "
            "groups a configuration's seeds; final_test_acc, best_test_acc and "
            "epochs_to_target are each run's results.")


def _log_artifacts(mlrun, run: Run) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        io.write_json(tmp / "metrics.json", {"config": run.config, "seed": run.seed,
                                             **run.metrics, **run.timings})
        io.write_text(tmp / "curves.csv", io.csv_text(run.curve_rows(), CURVE_FIELDS, DIGITS))
        mlrun.log_artifact(tmp / "metrics.json")
        mlrun.log_artifact(tmp / "curves.csv")


def _train(mlrun, experiment, spec, cname, seed, data, device, trained, progress):
    """(rows, diagnostics rows) of one run: trained here, or replayed from ``trained``."""
    cfg = spec["configs"][cname]

    def on_epoch(row):
        progress.say(f"{experiment} {cname} seed={seed} epoch {row['epoch']}/{spec['epochs']} "
                     f"train_loss={row['train_loss']:.4f} test_acc={row['test_acc']:.4f} "
                     f"({row['seconds']:.2f}s)")
        progress.advance()
        mlrun.log_epoch(row["epoch"], {k: row[k] for k in ("train_loss", "train_acc",
                                                           "test_loss", "test_acc")}
                        | {"epoch_seconds": row["seconds"]})

    if trained is not None:
        for row in trained[1:]:
            on_epoch(row)
        return trained, []
    made = []  # the run's GradientDiagnostics, if it has one

    def diagnostics(model):
        made.append(rules.make_diagnostics(spec, cfg, seed, model, lambda metrics, step:
                    mlrun.log_epoch(step, {f"diag/{k}": v for k, v in metrics.items()
                                           if math.isfinite(v)})))
        return made[-1]

    task = params_mod.task_module(spec["task"])
    rows = loop.fit(task, spec, cfg, seed, data, device, on_epoch,
                    diagnostics if rules.diagnosed(spec, cfg, cname, seed) else None)
    return rows, [r for d in made for r in rules.diagnostics_rows(cname, seed, d.history)]


def train_one(experiment: str, spec: dict, cname: str, seed: int, data: dict, device, *,
              profile: str = "", tags: dict | None = None, progress: Progress | None = None,
              trained: list[dict] | None = None) -> Run:
    """One (configuration ``cname``, ``seed``) of ``spec`` on ``data`` (the configuration's),
    as one MLflow run.  A diverged run ends FAILED in MLflow (tagged ``diverged``) and is
    returned with ``diverged_at_epoch`` and its rows so far.  ``trained``: this seed's rows
    when it was trained stacked with its siblings; they are logged as if trained here."""
    progress = progress or Progress()
    try:
        with tracking.start(experiment, f"{cname}-seed{seed}",
                            _run_params(experiment, spec, cname, seed, data["meta"], profile),
                            {**(tags or {}), "config": cname, "seed": seed},
                            description(experiment, spec)) as mlrun:
            try:
                rows, diag = _train(mlrun, experiment, spec, cname, seed, data, device,
                                    trained, progress)
            except loop.Diverged as e:
                mlrun.set_tag("diverged", str(e))
                raise
            run = Run(experiment, cname, seed, rows,
                      rounded(run_metrics(rows, spec["target_accuracy"])), diag,
                      stacked=trained is not None)
            mlrun.log_summary(run.metrics)
            _log_artifacts(mlrun, run)
    except loop.Diverged as e:
        progress.say(f"error: {experiment} {cname} seed={seed} diverged: {e}; this run stops "
                     "(MLflow FAILED) and the configuration is reported as diverged", True)
        return Run(experiment, cname, seed, e.rows, dict.fromkeys(RUN_METRICS),
                   diverged_at_epoch=e.epoch)
    return run


def stacked_rows(experiment: str, spec: dict, cname: str, seeds: list[int], data: dict,
                 device) -> list | None:
    """Every seed's rows trained together (``stack_seeds: true``), or None: not asked for,
    not eligible (logged), or a seed diverged (then one seed at a time reports it)."""
    if not spec.get("stack_seeds") or len(seeds) < 2:
        return None
    task, cfg = params_mod.task_module(spec["task"]), spec["configs"][cname]
    why_not = stacked.eligible(task, spec, cfg, data["meta"])
    if why_not is not None:
        log.info("%s %s: seeds trained one at a time (%s)", experiment, cname, why_not)
        return None
    try:
        return loop.fit_seeds(task, spec, cfg, seeds, data, device)
    except loop.Diverged:
        log.info("%s %s: a seed diverged when stacked; training one seed at a time",
                 experiment, cname)
        return None


def train_config(experiment: str, spec: dict, cname: str, data: dict, device,
                 seeds: list[int] | None = None, **kwargs) -> list[Run]:
    """The ``seeds`` (default: all) of configuration ``cname``: stacked when possible, else
    one at a time."""
    seeds = list(spec["seeds"] if seeds is None else seeds)
    trained = stacked_rows(experiment, spec, cname, seeds, data, device)
    return [train_one(experiment, spec, cname, seed, data, device,
                      trained=None if trained is None else trained[i], **kwargs)
            for i, seed in enumerate(seeds)]
