"""Units of work of a train stage: what is cached, and what is sent to an executor.

A unit is one configuration's seeds trained stacked (``stack_seeds: true``), or one
(configuration, seed).  ``train_unit(job)`` trains one where it runs: in the stage's process
(local executor) or on a Dask worker, which loads and prepares the data itself from
``data/processed/`` (kept per process for the next unit) and refuses a unit keyed with
other code or data than its own (``Checkout``).  A unit returns its runs as plain dicts
(``Run.to_dict``), which is also what the run cache keeps.  ``run_all`` reuses every unit
whose cache entry matches, sends the rest to the executor, keeps each as soon as it is
back, and says per unit "reused" or "trained" with ``[run k/N, ETA mm:ss]``.

Exactly once: a unit's MLflow runs stay RUNNING until its entry is kept; only then are they
ended FINISHED (FAILED when diverged), and a reused entry ends any of its runs a kill left
open.  A rerun after a kill at any point trains nothing that was kept and leaves one
FINISHED run per (configuration, seed).  ``FREEGRAD_KILL_AT=<point>`` SIGKILLs the stage at
a point of a unit's end (``KILL_POINTS``), for the tests that check this.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from experiments.config import Experiment
from experiments.results import paths
from experiments.results.records import Run
from experiments.training import environment, inputs, tracking
from experiments.training.executor import Executor
from experiments.training.run import Progress, train_runs
from experiments.training.runcache import RunCache, stage_dependency_hashes

log = logging.getLogger("experiments.training")

KILL_ENV = "FREEGRAD_KILL_AT"
KILL_POINTS = ("trained", "stored", "reported")  # back from the executor; kept; one run ended


def _fault_point(name: str) -> None:
    """SIGKILL this process here when ``$FREEGRAD_KILL_AT`` names this point (tests only)."""
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def _report(runs: list[dict]) -> None:
    """End the units' MLflow runs: FINISHED, or FAILED where the run diverged."""
    for run in runs:
        if run.get("mlflow_run_id"):
            status = "FAILED" if run["diverged_at_epoch"] is not None else "FINISHED"
            if not tracking.finish(run["mlflow_run_id"], status):
                log.warning("MLflow has no run %s (%s seed %s) to end %s", run["mlflow_run_id"],
                            run["config"], run["seed"], status)
            _fault_point("reported")


class CheckoutMismatch(RuntimeError):
    """A unit reached a worker whose code or data differ from those it was keyed with."""


@dataclass(frozen=True)
class Checkout:
    """Where a unit's code and data come from: the stage's repository and DVC's hashes of
    the stage's deps (what the run cache keys the unit with)."""

    root: str
    hashes: dict = field(hash=False, compare=False)

    def refuse_other_code(self, stage: str) -> None:
        """Raise ``CheckoutMismatch`` when this process imports ``experiments`` from another
        repository whose deps of ``stage`` hash differently (a worker started from another
        checkout): it would train other code than the stage keyed the unit with."""
        here = str(paths.ROOT)
        if here == self.root:
            return
        try:
            own = stage_dependency_hashes(stage)
        except Exception as e:  # not a DVC repository, or no such stage
            own = {"(its DVC stage)": f"cannot be hashed: {e}"}
        differ = sorted(k for k in {*own, *self.hashes} if own.get(k) != self.hashes.get(k))
        if differ:
            raise CheckoutMismatch(
                f"{stage}: this unit was keyed with the code and data of {self.root}, but this "
                f"worker imports experiments from {here}, whose {', '.join(differ)} differ; "
                "start the workers with the stage's checkout first on PYTHONPATH (and its "
                "data/ on a shared filesystem)")


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to train one unit (plain values: it is pickled)."""

    experiment: Experiment
    config: str
    seeds: tuple[int, ...]
    threads: int  # torch's CPU threads: results follow them (reduction order)
    checkout: Checkout
    tags: dict = field(hash=False, default_factory=dict)

    @property
    def cfg(self) -> dict:
        return self.experiment.config(self.config)

    @property
    def name(self) -> str:
        seeds = "-".join(map(str, self.seeds))
        return (f"{self.experiment.name}/{self.config}/"
                f"seed{'s' if len(self.seeds) > 1 else ''}{seeds}")

    @property
    def n_runs(self) -> int:
        return len(self.seeds)


def jobs_of(experiment: Experiment, threads: int, checkout: Checkout, tags: dict) -> list[Job]:
    """The stage's units, in the order its outputs list runs (configuration, then seed).
    ``threads``: the stage's CPU threads, which every unit uses wherever it runs (a Dask
    worker's default is one), so results do not depend on where a unit executes."""
    spec = experiment.spec
    stacked = spec.get("stack_seeds") and len(spec["seeds"]) > 1
    groups = [tuple(spec["seeds"])] if stacked else [(s,) for s in spec["seeds"]]
    return [Job(experiment, cname, seeds, threads, checkout, tags)
            for cname in spec["configs"] for seeds in groups]


def train_unit(job: Job, progress: Progress | None = None) -> list[dict]:
    """Train one unit here (the stage's process or a worker); its runs as dicts."""
    import freegrad.kernels

    job.checkout.refuse_other_code(f"train@{job.experiment.name}")
    environment.configure_determinism()
    environment.reuse_freed_memory()  # a Dask worker's allocator, as the stage's own
    freegrad.kernels.ensure_built()  # a first build takes tens of seconds: not in an epoch
    torch.set_num_threads(job.threads)
    device = environment.pick_device()
    data = inputs.configuration_data(job.experiment, inputs.experiment_data(job.experiment, device),
                                     job.config)
    return [r.to_dict() for r in train_runs(job, data, device, progress)]


class Tally:
    """``[run k/N, ETA mm:ss]``: runs done of all, and the time left at the pace of the
    runs trained so far (reused ones take no time)."""

    def __init__(self, total: int):
        self.total, self.done, self.trained, self.t0 = total, 0, 0, time.perf_counter()

    def add(self, n: int, trained: bool) -> str:
        self.done += n
        self.trained += n if trained else 0
        left = self.total - self.done
        if self.trained and left:
            eta = (time.perf_counter() - self.t0) / self.trained * left
            return f"[run {self.done}/{self.total}, ETA {int(eta // 60):02d}:{int(eta % 60):02d}]"
        return f"[run {self.done}/{self.total}]"


def run_all(jobs: list[Job], cache: RunCache, executor: Executor,
            train: Callable[[Job], list[dict]], bar=None) -> list[Run]:
    """Every job's runs, in ``jobs`` order: reused from ``cache`` where the key matches,
    else trained by ``executor`` and kept in ``cache`` as soon as each is back."""
    tally, results = Tally(sum(j.n_runs for j in jobs)), {}
    keys = {job: cache.key_of(job) for job in jobs}
    say = Progress(bar).say
    for job in jobs:
        kept = cache.load(keys[job])
        if kept is not None:
            results[job] = kept["runs"]
            _report(kept["runs"])  # a kill may have left them open after the store
            say(f"{tally.add(job.n_runs, False)} {job.name}: reused")
    todo = [job for job in jobs if job not in results]
    threads = max((job.threads for job in todo), default=1)
    for job, runs in executor.run(todo, train, lambda j: j.name, threads):
        _fault_point("trained")
        cache.store(keys[job], {"runs": runs})
        _fault_point("stored")
        _report(runs)
        results[job] = runs
        say(f"{tally.add(job.n_runs, True)} {job.name}: trained")
        if bar is not None:
            bar.update(job.n_runs)
    return [Run.from_dict(r) for job in jobs for r in results[job]]
