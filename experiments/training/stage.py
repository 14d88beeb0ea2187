"""The ``train@<experiment>`` stage: every (configuration, seed) of one experiment.

    python -m experiments.training suc

Reads ``params.yaml`` (the active ``profile`` and ``experiments.<name>``, resolved by
``experiments.config``), trains every unit of the experiment (``tuning``: first the
learning-rate search on a validation split, where the experiment has one; ``units``: reusing the run
cache's kept runs, on the executor of ``params``; ``run``: one MLflow run per
(configuration, seed); ``loop``: the training itself) and writes the stage's outputs
(``experiments.results.records``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from functools import partial
from pathlib import Path

from tqdm import tqdm

from experiments import config
from experiments.config import Experiment
from experiments.results import paths, records
from experiments.results.datasets import DataError
from experiments.training import environment, inputs, tracking, tuning, units
from experiments.training.executor import Executor, ExecutorError
from experiments.training.run import Progress
from experiments.training.runcache import RunCache

log = logging.getLogger("experiments.training")


def _train_all(experiment: Experiment, jobs: list, cache: RunCache, executor: Executor):
    """Every job's runs, with progress bars on a terminal (runs; epochs when local)."""
    n_runs, show = sum(job.n_runs for job in jobs), sys.stderr.isatty()
    local = executor.kind == "local"
    with tqdm(total=n_runs, disable=not show, desc=experiment.name, unit="run") as bar, \
            tqdm(total=n_runs * experiment.spec["epochs"], disable=not (show and local),
                 desc="epochs", unit="epoch", position=1, leave=False) as epochs:
        train = (partial(units.train_unit, progress=Progress(epochs if show else None))
                 if local else units.train_unit)
        return units.run_all(jobs, cache, executor, train, bar if show else None)


def run_experiment(name: str, params: dict | None = None, root: Path | None = None) -> dict:
    """Train every configuration and seed of ``name`` (reusing kept runs, on the executor
    of ``params``): first its learning-rate search where it has ``tuning``
    (``experiments.training.tuning``), then its configurations and their tuned twins; write
    metrics, runs, curves, diagnostics, timings (under ``root``, default the repository).
    Returns the details written to ``reports/runs/<name>.json``."""
    params = params if params is not None else config.load()
    experiment = Experiment.of(params, name)
    layout = paths.Layout(root) if root is not None else paths.LAYOUT
    executor = Executor.from_params(params)
    environment.configure_determinism()
    device = environment.pick_device()
    threads = environment.threads_of(experiment.spec, device)
    t_stage = time.perf_counter()
    data = inputs.experiment_data(experiment, device)
    import freegrad as fg

    tags = {"git_commit": tracking.git_commit(), "dvc_stage": f"train@{name}",
            "freegrad_version": fg.__version__, "profile": experiment.profile,
            "device": device.type}
    cache = RunCache.for_stage(name, experiment.profile, layout)
    checkout = units.Checkout(str(paths.ROOT), cache.context["dependencies"])

    def train(exp: Experiment) -> list:
        jobs = units.jobs_of(exp, threads, checkout, tags)
        log.info("train@%s (%s): profile=%s device=%s threads=%d runs=%d epochs=%d executor=%s",
                 name, exp.phase, exp.profile, device.type, threads,
                 sum(job.n_runs for job in jobs), exp.spec["epochs"], executor.describe())
        return _train_all(exp, jobs, cache, executor)

    searched, search = [], None
    if experiment.spec.get("tuning"):
        search, searched = tuning.search(experiment, train, data)
        experiment = tuning.tuned_experiment(experiment, search)
    runs = train(experiment)
    chance = {c: inputs.chance_accuracy(inputs.configuration_data(experiment, data, c))
              for c in experiment.spec["configs"]}
    details = records.details_of(experiment, data["meta"], runs, chance, search)
    timings = records.timings_of(name, device.type, threads, searched + runs,
                                 time.perf_counter() - t_stage)
    records.write_outputs(name, details, runs, timings, layout)
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
        params = config.load()
        config.resolve(params, args.experiment)
        run_experiment(args.experiment, params)
    except (config.ParamsError, DataError, tracking.TrackingError, ExecutorError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
