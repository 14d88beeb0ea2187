"""The run cache: keys that change with everything that determines a run, entries that
survive only when whole."""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path

import pytest
import yaml

from experiments.training import runcache
from tests.conftest import sh

DEPS = {"experiments/training/stage.py": "a" * 32, "data/processed/mnist.pt": "b" * 32}
RUN = {"settings": {"lr": 0.1, "epochs": 3}, "config": {"forward": "Logistic"}, "seeds": [0]}


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.delenv(runcache.RETRAIN_ENV, raising=False)
    return runcache.RunCache("suc", DEPS, "full", directory=tmp_path)


@pytest.mark.parametrize("change", [
    lambda d, r, p: ({**d, "experiments/training/stage.py": "c" * 32}, r, p),  # code
    lambda d, r, p: ({**d, "data/processed/mnist.pt": "d" * 32}, r, p),  # data
    lambda d, r, p: (d, {**r, "settings": {"lr": 0.2, "epochs": 3}}, p),  # a setting
    lambda d, r, p: (d, {**r, "config": {"forward": "Tanh"}}, p),  # the configuration
    lambda d, r, p: (d, {**r, "seeds": [1]}, p),  # the seed
    lambda d, r, p: (d, r, "quick"),  # the profile
], ids=["code", "data", "setting", "config", "seed", "profile"])
def test_every_determinant_changes_the_key(tmp_path, change):
    key = runcache.RunCache("suc", DEPS, "full", tmp_path).key(**RUN)
    deps, run, profile = change(DEPS, RUN, "full")
    assert runcache.RunCache("suc", deps, profile, tmp_path).key(**run) != key
    assert runcache.RunCache("suc", dict(DEPS), "full", tmp_path).key(**dict(RUN)) == key


def test_an_entry_round_trips_and_retrain_ignores_it(cache, monkeypatch):
    key = cache.key(**RUN)
    assert cache.load(key) is None
    value = {"rows": [{"epoch": 1, "test_acc": 0.123456789012345}], "metrics": {"x": None}}
    cache.store(key, value)
    assert cache.load(key) == value
    monkeypatch.setenv(runcache.RETRAIN_ENV, "1")
    assert runcache.RunCache("suc", DEPS, "full", cache.directory.parent).load(key) is None


def test_an_entry_keeps_an_infinite_diagnostic(cache):
    """A norm ratio is infinite where the true gradient is zero and the rule's is not (a
    saturated Logistic under `constant`, LeNet-5 full profile): the entry keeps it."""
    key = cache.key(**RUN)
    value = {"diagnostics": [{"step": 50, "norm_ratio": math.inf, "cosine": math.nan}]}
    cache.store(key, value)
    back = cache.load(key)["diagnostics"][0]
    assert back["norm_ratio"] == math.inf and math.isnan(back["cosine"])


def test_a_corrupt_entry_is_ignored_with_one_warning(cache, caplog):
    keys = [cache.key(**{**RUN, "seeds": [s]}) for s in (0, 1)]
    cache.directory.mkdir(parents=True)
    (cache.directory / f"{keys[0]}.json").write_text('{"key": "')  # cut short by a kill
    (cache.directory / f"{keys[1]}.json").write_text('{"key": "another", "value": {}}')
    with caplog.at_level(logging.WARNING, logger="experiments.training.runcache"):
        assert cache.load(keys[0]) is None and cache.load(keys[1]) is None
    assert len(caplog.records) == 1 and "retrained" in caplog.records[0].getMessage()


def test_dependency_hashes_are_dvcs_own(tmp_path):
    """The hashes are the ones `dvc repro` writes to dvc.lock (.dvcignore applied)."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_CONFIG_GLOBAL": os.devnull,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    sh(["git", "init", "-q"], tmp_path, env)
    sh(["dvc", "init", "-q"], tmp_path, env)
    (tmp_path / "src" / "__pycache__").mkdir(parents=True)
    (tmp_path / "src" / "a.py").write_text("a = 1\n")
    (tmp_path / "src" / "__pycache__" / "a.pyc").write_bytes(b"\0")
    (tmp_path / "data.txt").write_text("3\n")
    (tmp_path / ".dvcignore").write_text("**/__pycache__/\n")
    (tmp_path / "params.yaml").write_text("lr: 0.1\n")
    stage = {"cmd": "echo ${item} > out-${item}.txt", "deps": ["src", "data.txt"],
             "params": ["lr"], "outs": ["out-${item}.txt"]}
    (tmp_path / "dvc.yaml").write_text(
        yaml.safe_dump({"stages": {"train": {"foreach": ["x"], "do": stage}}}))
    sh(["dvc", "repro", "-q"], tmp_path, env)
    locked = yaml.safe_load((tmp_path / "dvc.lock").read_text())["stages"]["train@x"]["deps"]
    assert runcache.stage_dependency_hashes("train@x", tmp_path) == {
        d["path"]: d["md5"] for d in locked}  # files and folders; params are in the key
