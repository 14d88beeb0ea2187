"""`python -m experiments.analysis.timings`: the README's table of each train stage's device and
wall
time, read from reports/timings/."""

from __future__ import annotations

import json

from experiments.analysis import timings
from experiments.results import paths


def test_the_table_has_a_row_per_timed_stage_with_its_device_and_times(tmp_path, monkeypatch):
    record = {"experiment": "toy", "device": "cpu", "torch_threads": 1, "stage_seconds": 90.0,
              "configs": {"a": {"runs": {"seed_0": {"epoch_seconds": [30.0, 30.0]},
                                         "seed_1": {"epoch_seconds": [60.0]}}}}}
    (tmp_path / "toy.json").write_text(json.dumps(record))
    monkeypatch.setattr(paths.LAYOUT, "timings", tmp_path)
    rows = timings.rows()
    assert rows == [{"experiment": "toy", "stage": "train@toy", "device": "cpu", "threads": 1,
                     "runs": 2, "stage_min": 1.5, "epoch_min": 2.0}]
    assert timings.table(rows).splitlines()[-1] == "| `train@toy` | cpu | 1 | 2 | 1.5 | 2.0 |"
    two = rows + [{**rows[0], "stage": "train@other", "device": "cuda", "runs": 3}]
    assert timings.table(two).splitlines()[-1] == "| all stages | cpu, cuda | | 5 | 3.0 | 4.0 |"


def test_every_committed_train_stage_is_timed():
    stages = {row["stage"] for row in timings.rows()}
    runs = {f"train@{p.stem}" for p in paths.LAYOUT.runs.glob("*.json")}
    assert runs <= stages, sorted(runs - stages)


def test_the_readmes_results_table_is_what_the_command_prints():
    """The README quotes `python -m experiments.analysis.timings`, not numbers typed by hand."""
    readme = (paths.ROOT / "README.md").read_text()
    assert timings.table(timings.rows()) in readme, "rerun `python -m experiments.analysis.timings`"
