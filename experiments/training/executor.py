"""Where a train stage's runs execute: in the stage's process, or as tasks on a Dask cluster.

``params.yaml``'s ``executor`` section (not a param of any stage: where a run executes does
not change its result)::

    executor:
      kind: local            # local (in-process, the default) | dask
      address: null          # dask: null starts a distributed.LocalCluster; tcp://host:8786
      workers: 2             # LocalCluster only
      threads_per_worker: 1  # LocalCluster only

``FREEGRAD_DASK_ADDRESS=tcp://host:port`` selects ``kind: dask`` with that address.

On Dask each unit of work is one task, ``train(unit)``; the worker reads the data from
``data/processed/`` itself (a cluster needs the repository and ``data/`` on a shared
filesystem) and returns the result to the stage, which writes every output as the local
executor does.  A task that raises is retried ``RETRIES`` times; a worker that dies has its
tasks rescheduled by the scheduler (``distributed.scheduler.allowed-failures``, 3 by default).
A unit that still fails fails the stage, naming the unit.  When the cluster's workers declare
a ``GPU`` resource (``dask worker --resources GPU=1``), every task asks for one.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

ADDRESS_ENV = "FREEGRAD_DASK_ADDRESS"
RETRIES = 2
KINDS = ("local", "dask")

log = logging.getLogger("experiments.training.executor")


def task_key(unit_name: str, i: int) -> str:
    """The Dask key of unit ``i``: ``train_unit-<unit name>-<i>``.  Dask groups tasks by the
    key's prefix (``distributed.utils.key_split``: ``train_unit``), so the stage's units are
    one group: the scheduler queues them and hands one to each free worker thread, and learns
    their duration.  A key starting with the unit's name ("cnn/relu_true/seed0-3") made
    each unit a group of its own, assigned up front by a guessed duration of 0.5 s: on two
    workers, 10 of the last 12 cnn units queued on one while the other idled."""
    return f"train_unit-{unit_name}-{i}"


class ExecutorError(RuntimeError):
    """A bad executor setting, or a unit of work that failed for good on the cluster."""


@dataclass(frozen=True)
class Executor:
    kind: str = "local"
    address: str | None = None
    workers: int = 2
    threads_per_worker: int = 1

    @classmethod
    def from_params(cls, params: dict) -> Executor:
        """The ``executor`` section of ``params`` (absent: local), then the environment."""
        section = dict(params.get("executor") or {})
        unknown = set(section) - {"kind", "address", "workers", "threads_per_worker"}
        if unknown:
            raise ExecutorError(f"executor: unknown key(s) {sorted(unknown)}; accepted: kind, "
                                "address, workers, threads_per_worker")
        if os.environ.get(ADDRESS_ENV):
            section.update(kind="dask", address=os.environ[ADDRESS_ENV])
        ex = cls(**{k: v for k, v in section.items() if v is not None or k == "address"})
        if ex.kind not in KINDS:
            raise ExecutorError(f"executor.kind: {ex.kind!r}; accepted: {', '.join(KINDS)}")
        for key in ("workers", "threads_per_worker"):
            value = getattr(ex, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ExecutorError(f"executor.{key}: {value!r}; accepted: an integer >= 1")
        return ex

    def describe(self) -> str:
        if self.kind == "local":
            return "local (in this process)"
        return f"dask at {self.address}" if self.address else (
            f"dask LocalCluster ({self.workers} workers x {self.threads_per_worker} threads)")

    def run(self, units: list, train: Callable, name: Callable[[object], str],
            unit_threads: int = 1) -> Iterator:
        """Yield ``(unit, result)`` as each unit finishes (local: in order).  Each unit
        uses ``unit_threads`` CPU threads wherever it runs."""
        if self.kind == "local":
            for unit in units:
                yield unit, train(unit)
            return
        yield from self._run_dask(units, train, name, unit_threads)

    def local_workers(self, unit_threads: int) -> int:
        """A LocalCluster's worker count: ``workers``, but no more than the CPUs can run at
        once when each unit uses ``unit_threads`` threads (OpenMP threads that outnumber
        the cores spin against each other: an epoch took 7x longer)."""
        fit = max(1, (os.cpu_count() or 1) // max(1, unit_threads))
        if fit < self.workers:
            log.warning("executor: %d LocalCluster workers x %d threads per unit exceed %d "
                        "CPUs; starting %d", self.workers, unit_threads, os.cpu_count(), fit)
        return min(self.workers, fit)

    def _run_dask(self, units: list, train: Callable, name: Callable[[object], str],
                  unit_threads: int) -> Iterator:
        from distributed import as_completed

        with self._client(unit_threads) as client:
            workers = client.scheduler_info()["workers"].values()
            gpu = any("GPU" in w.get("resources", {}) for w in workers)
            futures = {client.submit(train, unit, key=task_key(name(unit), i), pure=False,
                                     retries=RETRIES, resources={"GPU": 1} if gpu else None):
                       unit for i, unit in enumerate(units)}
            for future in as_completed(futures):
                unit = futures[future]
                try:
                    result = future.result()
                except Exception as err:  # the task's own error, after its retries
                    for other in futures:
                        other.cancel()
                    raise ExecutorError(f"run {name(unit)} failed on the Dask cluster after "
                                        f"{RETRIES} retries: {err!r}") from err
                yield unit, result

    @contextlib.contextmanager
    def _client(self, unit_threads: int) -> Iterable:
        from distributed import Client, LocalCluster

        if self.address:
            with Client(self.address) as client:
                yield client
            return
        with LocalCluster(n_workers=self.local_workers(unit_threads),
                          threads_per_worker=self.threads_per_worker,
                          processes=True, dashboard_address=":0") as cluster, \
                Client(cluster) as client:
            yield client
