"""Seconds per epoch of the ``feedback`` experiment's arms at full size, in one process on one
CPU thread, to plan the full rerun (train@feedback, train@feedback_fashion).

    python benchmarks/bench_feedback_epoch.py [--arms bp fa usf brsf frsf] [--train-images N]

Each arm trains one epoch of the full profile (MNIST, batch 64) with the autograd loop
(``engine="autograd"``: where feedback arms train), and ``bp`` also with the C++ step
(``engine="auto"``: where the pipeline trains it). ``--train-images`` times the first N
images and scales to 60,000 (``per epoch`` is then an estimate, said so).
"""

from __future__ import annotations

import argparse
import time

import torch

from experiments import config
from experiments.training import environment, inputs, loop


def seconds_per_epoch(experiment, cname: str, data: dict, engine: str) -> float:
    spec = {**experiment.spec, "epochs": 1}
    cfg = experiment.config(cname)
    t0 = time.perf_counter()
    rows = loop.fit(experiment.task, spec, cfg, 0, data, "cpu", engine=engine)
    wall = time.perf_counter() - t0
    print(f"  {cname:5s} {engine:8s} test_acc={rows[-1]['test_acc']:.4f} wall={wall:.1f}s "
          f"(epoch {rows[-1]['seconds']:.1f}s)", flush=True)
    return rows[-1]["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arms", nargs="+", default=["bp", "fa", "usf", "brsf", "frsf"])
    parser.add_argument("--train-images", type=int, default=None)
    parser.add_argument("--experiment", default="feedback")
    args = parser.parse_args()
    torch.set_num_threads(1)
    environment.pick_device()
    experiment = config.Experiment.of(config.load(), args.experiment, "full")
    data = inputs.experiment_data(experiment, "cpu")
    if args.train_images:
        data = inputs.limit(data, {"train_limit": args.train_images})
    scale = 60000 / len(data["train_x"])
    print(f"{args.experiment}: 1 thread, {len(data['train_x'])} training images, batch "
          f"{experiment.spec['batch_size']}; seconds per 60k-image epoch"
          + (" (scaled)" if scale != 1 else ""))
    results = {}
    for cname in args.arms:
        results[(cname, "autograd")] = seconds_per_epoch(experiment, cname, data, "autograd")
    if "bp" in args.arms:
        results[("bp", "auto")] = seconds_per_epoch(experiment, "bp", data, "auto")
    base = results.get(("bp", "autograd"))
    for (cname, engine), s in results.items():
        ratio = f"  {s / base:.2f}x bp (autograd)" if base else ""
        print(f"{cname:5s} {engine:8s} {s * scale:7.1f} s/epoch{ratio}")


if __name__ == "__main__":
    main()
