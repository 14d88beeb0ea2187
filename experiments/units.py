"""Units of work of a train stage: what is cached, and what is sent to an executor.

A unit is one configuration's seeds trained stacked (``stack_seeds: true``), or one
(configuration, seed).  ``train_unit(job)`` trains one where it runs: in the stage's process
(local executor) or on a Dask worker, which loads and prepares the data itself from
``data/processed/`` (kept per process for the next unit).  A unit returns its runs as plain
dicts (``Run.to_dict``), which is also what the run cache keeps.  ``run_all`` reuses every
unit whose cache entry matches, sends the rest to the executor, keeps each as soon as it is
back, and says per unit "reused" or "trained" with ``[run k/N, ETA mm:ss]``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from experiments import environment, rules
from experiments import params as params_mod
from experiments.executor import Executor
from experiments.run import Progress, Run, train_config
from experiments.runcache import RunCache, digest

log = logging.getLogger("experiments.train")


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to train one unit (plain values: it is pickled)."""

    experiment: str
    profile: str
    spec: dict = field(hash=False)
    config: str
    seeds: tuple[int, ...]
    threads: int  # torch's CPU threads: results follow them (reduction order)
    tags: dict = field(hash=False, default_factory=dict)

    @property
    def name(self) -> str:
        seeds = "-".join(map(str, self.seeds))
        return f"{self.experiment}/{self.config}/seed{'s' if len(self.seeds) > 1 else ''}{seeds}"

    @property
    def n_runs(self) -> int:
        return len(self.seeds)

    def cache_key(self, cache: RunCache) -> str:
        """Everything besides the stage's deps and profile that decides this unit's runs."""
        cfg = self.spec["configs"][self.config]
        settings = {k: v for k, v in self.spec.items() if k not in ("configs", "seeds")}
        return cache.key(settings=settings, config=cfg, seeds=list(self.seeds),
                         threads=self.threads,
                         diagnosed=[rules.diagnosed(self.spec, cfg, self.config, s)
                                    for s in self.seeds])


def jobs_of(experiment: str, profile: str, spec: dict, threads: int, tags: dict) -> list[Job]:
    """The stage's units, in the order its outputs list runs (configuration, then seed).
    ``threads``: the stage's CPU threads, which every unit uses wherever it runs (a Dask
    worker's default is one), so results do not depend on where a unit executes."""
    stacked = spec.get("stack_seeds") and len(spec["seeds"]) > 1
    groups = [tuple(spec["seeds"])] if stacked else [(s,) for s in spec["seeds"]]
    return [Job(experiment, profile, spec, cname, seeds, threads, tags)
            for cname in spec["configs"] for seeds in groups]


_DATA: dict[str, dict] = {}  # this process's prepared data, by what it was prepared from


def stage_data(spec: dict, device, prepare: Callable) -> dict:
    """``prepare(spec, device)``, done once per process for the same data settings."""
    key = digest([spec["task"], spec["dataset"], spec.get("train_limit"),
                  spec.get("test_limit"), str(device)])
    if key not in _DATA:
        _DATA.clear()  # one experiment's data at a time
        _DATA[key] = prepare(spec, device)
    return _DATA[key]


def train_unit(job: Job, progress: Progress | None = None) -> list[dict]:
    """Train one unit here (the stage's process or a worker); its runs as dicts."""
    import freegrad.kernels

    environment.configure_determinism()
    environment.reuse_freed_memory()  # a Dask worker's allocator, as the stage's own
    freegrad.kernels.ensure_built()  # a first build takes tens of seconds: not in an epoch
    device = environment.pick_device()
    data = stage_data(job.spec, device, environment.prepare)
    torch.set_num_threads(job.threads)
    task = params_mod.task_module(job.spec["task"])
    cfg = job.spec["configs"][job.config]
    cdata = environment.limit(environment.configuration_data(task, data, cfg), job.spec)
    runs = train_config(job.experiment, job.spec, job.config, cdata, device,
                        seeds=list(job.seeds), profile=job.profile, tags=job.tags,
                        progress=progress)
    return [r.to_dict() for r in runs]


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
    keys = {job: job.cache_key(cache) for job in jobs}
    say = Progress(bar).say
    for job in jobs:
        kept = cache.load(keys[job])
        if kept is not None:
            results[job] = kept["runs"]
            say(f"{tally.add(job.n_runs, False)} {job.name}: reused")
    todo = [job for job in jobs if job not in results]
    threads = max((job.threads for job in todo), default=1)
    for job, runs in executor.run(todo, train, lambda j: j.name, threads):
        cache.store(keys[job], {"runs": runs})
        results[job] = runs
        say(f"{tally.add(job.n_runs, True)} {job.name}: trained")
        if bar is not None:
            bar.update(job.n_runs)
    return [Run.from_dict(r) for job in jobs for r in results[job]]
