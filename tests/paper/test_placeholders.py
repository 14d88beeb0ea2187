"""Placeholders of values a reader must not meet raw: a metric of a configuration diverged
on every seed, a number past 10^4, the claims' margin in points with its noun."""

from __future__ import annotations

import pytest

from paper import placeholders as build

VALUES = {"runs.cnn.n_seeds": 3, "runs.cnn.configs.noise_0.1.diverged": 3,
          "runs.cnn.configs.ok.diverged": 0,
          "metrics.cnn.noise_0.1.final_test_acc.mean": None,
          "metrics.cnn.noise_0.1.final_test_acc.std": None,
          "metrics.cnn.ok.final_train_loss.mean": 1178186134.2379,
          "params.claims.delta": 0.01, "params.other": 0.02}


@pytest.mark.parametrize("placeholder, text", [
    ("{{metrics.cnn.noise_0.1.final_test_acc | pm_pct:2}}", "diverged (3/3 seeds)"),
    ("{{metrics.cnn.noise_0.1.final_test_acc.mean | pct:2}}", "diverged (3/3 seeds)"),
    ("{{metrics.cnn.ok.final_train_loss.mean | f:4}}", r"1.18$\times10^{9}$"),
    ("{{params.claims.delta | points}}", "1 point"),
    ("{{params.other | points}}", "2 points"),
])
def test_placeholders_of_diverged_and_huge_values(placeholder, text):
    numbers = {"sources": {}, "values": VALUES}
    assert build.substitute(placeholder, numbers, "paper.md") == text


def test_the_numbers_stage_writes_each_configurations_diverged_seeds():
    from paper import numbers

    out: dict = {}
    numbers._runs_numbers("cnn", {"settings": {"seeds": [0, 1, 2]}, "configs": {
        "noise_0.1": {"forward": "ReLU", "backward": "noise", "diverged": 3, "runs": {}}}}, out)
    assert out["runs.cnn.configs.noise_0.1.diverged"] == 3 and out["runs.cnn.n_seeds"] == 3
    numbers_file = {"sources": {}, "values": out | {
        "metrics.cnn.noise_0.1.final_test_acc.mean": None,
        "metrics.cnn.noise_0.1.final_test_acc.std": None}}
    assert build.substitute("{{metrics.cnn.noise_0.1.final_test_acc | pm_pct:1}}",
                            numbers_file, "paper.md") == "diverged (3/3 seeds)"
