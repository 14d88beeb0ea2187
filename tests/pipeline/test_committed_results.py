"""The repository shows the whole full-profile reproduction as it stands (issue 12): every
experiment's results are the full profile's, and git tracks the tables, figures, claims and
paper the pipeline made from them."""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from experiments import config as P
from experiments.results import paths

# Experiments whose train stage has run: dvc.lock records it.  One added since the last full
# run (feedback, feedback_fashion: issue 26) has no committed results until it runs, and
# `dvc status` lists its stage as new.
LOCKED = yaml.safe_load((paths.ROOT / "dvc.lock").read_text())["stages"]
EXPERIMENTS = sorted(P.load()["experiments"])
RUN = [name for name in EXPERIMENTS if f"train@{name}" in LOCKED]


def tracked() -> set[str]:
    out = subprocess.run(["git", "ls-files", "reports", "paper"], cwd=paths.ROOT,
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_each_experiments_committed_results_are_the_full_profiles(name):
    if name not in RUN:
        pytest.skip(f"train@{name} has not run yet: no entry in dvc.lock")
    runs = json.loads((paths.LAYOUT.runs / f"{name}.json").read_text())
    assert runs["profile"] == "full", (f"reports/runs/{name}.json holds a {runs['profile']} run; "
                                       "`git checkout -- reports dvc.lock` restores the full one")


def test_git_tracks_every_table_figure_the_claims_and_the_paper():
    expected = {"paper/paper.pdf", "paper/generated/numbers.yaml", "reports/claims.md",
                "reports/claims.json"}
    for name in RUN:
        expected |= {f"reports/tables/{name}.md", f"reports/figures/{name}.png",
                     f"reports/figures/{name}.pdf"}
    assert expected <= tracked(), sorted(expected - tracked())
