"""The quick-profile ``train@cnn`` as a user runs it, against a plain PyTorch LeNet-5 loop.

    python benchmarks/bench_stage.py [--experiment cnn] [--plain-epochs 1]

Clones this repository's HEAD into a temporary folder (``git clone --shared``) with this
checkout's ``data/processed``, sets ``profile: quick`` and times ``dvc repro --single-item
train@<experiment>`` there with ``FREEGRAD_RETRAIN=1`` (every run trained, its own MLflow
store): wall time from the command's start to its end, start-up, evaluation, MLflow logging and
the outputs included.  Its image-epochs are the runs' epochs times their training images
(``reports/runs/<experiment>.json``).  Before and after it, in the same invocation, a loop a
user writes in twenty lines trains LeNet-5 (ReLU, ``torch.optim.SGD`` lr 0.01, batch 64,
in-memory tensors, one thread) on the same 60,000 images; the ratio is the stage's image-epochs
per second over the plain loop's (the mean of its two timings).  At 32ce056 it was 0.85.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from experiments.results import datasets  # noqa: E402
from experiments.tasks import models  # noqa: E402


def plain_loop(data: dict, epochs: int) -> float:
    """Image-epochs per second of a plain LeNet-5 loop (ReLU, SGD, batch 64, one thread)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.AvgPool2d(2),
                          nn.Conv2d(6, 16, 5), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                          nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                          nn.Linear(84, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = data["train_x"], data["train_y"]
    t0 = time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return epochs * len(x) / (time.perf_counter() - t0)


def stage(experiment: str, clone: Path) -> tuple[float, int, float]:
    """(wall seconds, image-epochs, the runs' summed epoch seconds) of the quick stage."""
    env = {**os.environ, "FREEGRAD_RETRAIN": "1", "DVC_NO_ANALYTICS": "1",
           "MLFLOW_TRACKING_URI": f"sqlite:///{clone / 'bench-mlruns.db'}",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    t0 = time.perf_counter()
    subprocess.run(["dvc", "repro", "--single-item", f"train@{experiment}"], cwd=clone, env=env,
                   check=True, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    runs = json.loads((clone / "reports" / "runs" / f"{experiment}.json").read_text())
    n_runs = sum(len(c["runs"]) for c in runs["configs"].values())
    image_epochs = n_runs * runs["settings"]["epochs"] * runs["data"]["train_n"]
    timings = json.loads((clone / "reports" / "timings" / f"{experiment}.json").read_text())
    epochs_s = sum(sum(r["epoch_seconds"]) for c in timings["configs"].values()
                   for r in c["runs"].values())
    return wall, image_epochs, epochs_s


def _clone(tmp: Path) -> Path:
    clone = tmp / "repo"
    subprocess.run(["git", "clone", "--quiet", "--shared", str(ROOT), str(clone)], check=True)
    shutil.copytree(ROOT / "data" / "processed", clone / "data" / "processed")
    params = clone / "params.yaml"
    params.write_text(params.read_text().replace("\nprofile: full\n", "\nprofile: quick\n", 1))
    return clone


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="cnn")
    parser.add_argument("--plain-epochs", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = models.prepare_images(datasets.load("mnist"), torch.device("cpu"))
    with tempfile.TemporaryDirectory(prefix="bench-stage-") as tmp:
        clone = _clone(Path(tmp))
        before = plain_loop(data, args.plain_epochs)
        wall, image_epochs, epochs_s = stage(args.experiment, clone)
        after = plain_loop(data, args.plain_epochs)
    plain = (before + after) / 2
    rate = image_epochs / wall
    print(f"plain PyTorch LeNet-5 loop (ReLU, SGD, batch 64, 1 thread): {before:,.0f} and "
          f"{after:,.0f} image-epochs/s (before, after the stage)")
    print(f"quick train@{args.experiment} via dvc repro (FREEGRAD_RETRAIN=1): "
          f"{image_epochs:,} image-epochs in {wall:.1f} s wall = {rate:,.0f} image-epochs/s "
          f"({epochs_s:.1f} s in the runs' epochs, {image_epochs / epochs_s:,.0f}/s)")
    print(f"stage / plain loop: {rate / plain:.2f}x (target >= 1.7x; 0.85x at 32ce056)")


if __name__ == "__main__":
    main()
