"""The cost of running a train stage's units on Dask instead of in the stage's process.

For each experiment (default: ``mlp_sweep`` and ``lenet``, quick profile), the same stage
(``experiments.training.stage.run_experiment``) runs with ``executor.kind: local`` and with a
2-worker ``distributed.LocalCluster`` (1 thread each), every run trained (the run cache is
off: ``FREEGRAD_RETRAIN=1``), each writing its outputs to a scratch folder and logging to a
scratch MLflow store.  Rounds alternate the two; the ratio is the median over rounds of
(dask time / local time).  Both outputs are compared byte for byte.

On a 2-core machine no speed-up is expected for LeNet (the local stage already uses both
cores); the point is the machinery's cost: cluster start, shipping each unit and its result,
each worker preparing its data.  Target: under 10 % of the stage (ratio <= 1.10) where the
stage is long enough to matter (LeNet quick).

    FREEGRAD_DATA_MIRROR=/path/to/datasets python benchmarks/bench_executor.py
        [--experiments mlp_sweep lenet] [--profile quick] [--rounds 2]
"""

from __future__ import annotations

import argparse
import copy
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path

from experiments import config as params_mod
from experiments.results import paths
from experiments.training import stage

OUTPUTS = ("metrics", "runs", "curves", "diagnostics")


def run_stage(name: str, params: dict, kind: str, out: Path) -> float:
    params = copy.deepcopy(params)
    params["executor"] = {"kind": kind, "address": None, "workers": 2, "threads_per_worker": 1}
    t0 = time.perf_counter()
    stage.run_experiment(name, params, root=out)
    return time.perf_counter() - t0


def outputs(name: str, root: Path) -> dict:
    layout = paths.Layout(root)
    return {kind: layout.report(kind, name).read_bytes() for kind in OUTPUTS}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--experiments", nargs="+", default=["mlp_sweep", "lenet"])
    ap.add_argument("--profile", default="quick", choices=params_mod.PROFILES)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ["FREEGRAD_RETRAIN"] = "1"
    params = params_mod.load()
    params["profile"] = args.profile
    print(f"profile {args.profile}, {args.rounds} rounds, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}")
    print(f"{'experiment':<12} {'local (s)':>10} {'dask (s)':>10} {'dask/local':>11}  same bytes")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlruns.db"
        for name in args.experiments:
            times = {"local": [], "dask": []}
            for r in range(args.rounds):
                for kind in ("local", "dask") if r % 2 == 0 else ("dask", "local"):
                    times[kind].append(run_stage(name, params, kind, Path(tmp) / kind))
            same = outputs(name, Path(tmp) / "local") == outputs(name, Path(tmp) / "dask")
            pairs = zip(times["dask"], times["local"], strict=True)
            ratio = statistics.median(d / loc for d, loc in pairs)
            print(f"{name:<12} {statistics.median(times['local']):>10.1f} "
                  f"{statistics.median(times['dask']):>10.1f} {ratio:>10.3f}x  {same}")
    print(f"load after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
