"""Bad input, one clear message each: the table below is the specification.

Each row: (case, input, words the message must contain).  ``params`` rows edit a copy of
the repository's params.yaml and run the validation every stage runs before training; the
others provoke the failure they name.  Rule and forward names and parameters are checked
by freegrad itself (``fg.get(name).bind(params)``, ``forwards.get_forward(name).bind``);
the workbench only puts the params.yaml key path in front of freegrad's message.
"""

from __future__ import annotations

import copy
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from experiments import config as P
from experiments import data as D
from experiments.results import datasets, paths
from experiments.training import tracking

LENET = "experiments.lenet.configs"  # an expanded configuration's key path

# case | input (an edit of params.yaml, or what is broken) | expected message (all of these words)
PARAMS_CASES = [
    ("unknown task", "experiments.nosuch: <copy of suc, task nosuch>",
     ["experiments.nosuch.task", "'nosuch'", "single_unit"]),
    ("unknown rule name", f"{LENET}.rectangular.backward: rectangulr",
     [f"{LENET}.rectangular.backward", "'rectangulr'", "did you mean", "'rectangular'",
      "Registered rules"]),
    ("unknown forward name", f"{LENET}.standard.forward: Logistc",
     [f"{LENET}.standard.forward", "'Logistc'", "valid forwards", "'Logistic'"]),
    ("invalid rule values (a > b)", f"{LENET}.rectangular.rule_params: {{a: 1.0, b: -1.0}}",
     [f"{LENET}.rectangular.rule_params", "{'a': 1.0, 'b': -1.0}", "'rectangular'",
      "a=1.0 must be < b=-1.0"]),
    ("unknown rule parameter", f"{LENET}.rectangular.rule_params: {{c: 1.0}}",
     [f"{LENET}.rectangular.rule_params", "unknown parameter(s) ['c']", "accepts ['a', 'b']"]),
    ("unknown forward parameter", f"{LENET}.standard.forward_params: {{slope: 2.0}}",
     [f"{LENET}.standard.forward", "'Logistic'", "slope"]),
    ("unknown schedule kind",
     f"{LENET}.rectangular.rule_params.b: {{schedule: linaer, start: 1.0, end: 0.25, steps: 9}}",
     [f"{LENET}.rectangular.rule_params.b", "not a schedule", "unknown schedule 'linaer'",
      "'linear'"]),
    ("schedule with a missing key",
     f"{LENET}.rectangular.rule_params.b: {{schedule: linear, start: 1.0, end: 0.25}}",
     [f"{LENET}.rectangular.rule_params.b", "missing key(s) ['steps']",
      "it takes ['start', 'end', 'steps']"]),
    ("schedule leaving the rule's range",
     f"{LENET}.rectangular.rule_params.b: {{schedule: linear, start: 1.0, end: -2.0, steps: 9}}",
     [f"{LENET}.rectangular.rule_params", "'rectangular'", "a=-1.0 must be < b=-2.0",
      "at step 9"]),
    ("unknown scheduled parameter",
     f"{LENET}.rectangular.rule_params.c: {{schedule: linear, start: 1.0, end: 0.5, steps: 9}}",
     [f"{LENET}.rectangular.rule_params", "unknown parameter(s) ['c']", "accepts ['a', 'b']"]),
    ("unknown scope", f"{LENET}.rectangular.scope: everywhere",
     [f"{LENET}.rectangular.scope", "'everywhere'", "all, activations, params"]),
    ("wrong type", "experiments.lenet.lr: fast",
     ["experiments.lenet.lr", "expected float", "'fast'"]),
    ("wrong type (bool for int)", "experiments.lenet.epochs: true",
     ["experiments.lenet.epochs", "expected int", "True"]),
    ("wrong type (compile)", "experiments.lenet.compile: 'yes'",
     ["experiments.lenet.compile", "expected bool", "'yes'"]),
    ("missing key", f"{LENET}.standard.backward: <removed>",
     [f"{LENET}.standard.backward", "required key is missing"]),
    ("missing top-level key", "experiments: <removed>",
     ["params.experiments", "required key is missing"]),
    ("unknown key", "experiments.lenet.learning_rate: 0.1",
     ["experiments.lenet.learning_rate", "unknown key", "accepted keys"]),
    ("unknown profile", "profile: fast", ["profile", "'fast'", "full, quick, smoke"]),
    ("unknown dataset", "experiments.lenet.dataset: cifar",
     ["experiments.lenet.dataset", "'cifar'", "mnist"]),
    ("negative value", "experiments.lenet.batch_size: -1",
     ["experiments.lenet.batch_size", "must be positive", "-1"]),
    ("diagnostics names an unknown configuration",
     "experiments.lenet.diagnostics.configs: [nosuch]",
     ["experiments.lenet.diagnostics.configs", "'nosuch'", "rectangular"]),
]

OTHER_CASES = [
    ("params.yaml is not YAML", "params.yaml: 'profile: [full'",
     ["params.yaml", "not valid YAML"]),
    ("params.yaml missing", "no params.yaml", ["params.yaml", "file not found"]),
    ("unknown experiment on the command line", "python -m experiments.training nosuch",
     ["error: experiment 'nosuch' is not defined in params.yaml", "defined: suc"]),
    ("missing processed dataset", "data/processed/mnist.pt absent",
     ["mnist.pt does not exist", "dvc repro data"]),
    ("missing dataset file in the mirror", "<mirror>/MNIST/raw/train-labels-idx1-ubyte.gz absent",
     ["missing file", "train-labels-idx1-ubyte.gz", "d53e105e", "FREEGRAD_DATA_MIRROR"]),
    ("corrupted dataset file in the mirror",
     "<mirror>/MNIST/raw/t10k-labels-idx1-ubyte.gz truncated",
     ["corrupted file", "t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c",
      "data.mirror"]),
    ("unwritable MLflow store", "MLFLOW_TRACKING_URI=sqlite:///<a file>/mlruns.db",
     ["MLflow store", "cannot be written", "MLFLOW_TRACKING_URI"]),
    ("missing LaTeX toolchain", "pandoc and xelatex not on PATH",
     ["missing pandoc, xelatex", "sudo apt-get install pandoc texlive-xetex"]),
]

_EDITS = {
    "unknown task": lambda p: p["experiments"].update(nosuch={**p["experiments"]["suc"],
                                                              "task": "nosuch"}),
    "unknown rule name": lambda p: _cfg(p, "rectangular").update(backward="rectangulr"),
    "unknown forward name": lambda p: _cfg(p, "standard").update(forward="Logistc"),
    "invalid rule values (a > b)":
        lambda p: _cfg(p, "rectangular").update(rule_params={"a": 1.0, "b": -1.0}),
    "unknown rule parameter": lambda p: _cfg(p, "rectangular").update(rule_params={"c": 1.0}),
    "unknown forward parameter":
        lambda p: _cfg(p, "standard").update(forward_params={"slope": 2.0}),
    "unknown schedule kind": lambda p: _schedule(p, "b", "linaer", 1.0, 0.25),
    "schedule with a missing key":
        lambda p: _cfg(p, "rectangular")["rule_params"].update(
            b={"schedule": "linear", "start": 1.0, "end": 0.25}),
    "schedule leaving the rule's range": lambda p: _schedule(p, "b", "linear", 1.0, -2.0),
    "unknown scheduled parameter": lambda p: _schedule(p, "c", "linear", 1.0, 0.5),
    "unknown scope": lambda p: _cfg(p, "rectangular").update(scope="everywhere"),
    "wrong type": lambda p: p["experiments"]["lenet"].update(lr="fast"),
    "wrong type (bool for int)": lambda p: p["experiments"]["lenet"].update(epochs=True),
    "wrong type (compile)": lambda p: p["experiments"]["lenet"].update(compile="yes"),
    "missing key": lambda p: _cfg(p, "standard").pop("backward"),
    "missing top-level key": lambda p: p.pop("experiments"),
    "unknown key": lambda p: p["experiments"]["lenet"].update(learning_rate=0.1),
    "unknown profile": lambda p: p.update(profile="fast"),
    "unknown dataset": lambda p: p["experiments"]["lenet"].update(dataset="cifar"),
    "negative value": lambda p: p["experiments"]["lenet"].update(batch_size=-1),
    "diagnostics names an unknown configuration":
        lambda p: p["experiments"]["lenet"]["diagnostics"].update(configs=["nosuch"]),
}


def _cfg(p, name):
    """The fields of lenet's variant ``name`` (configuration ``name`` once expanded)."""
    return p["experiments"]["lenet"]["grids"][0]["axes"]["rule"][name]


def _schedule(p, key, kind, start, end):
    """lenet's rectangular window with ``rule_params.<key>`` a schedule over 9 steps."""
    _cfg(p, "rectangular")["rule_params"].update(
        {"a": -1.0, key: {"schedule": kind, "start": start, "end": end, "steps": 9}})


def test_the_table_covers_every_edit():
    assert [c[0] for c in PARAMS_CASES] == list(_EDITS)


@pytest.mark.parametrize("case, given, words", PARAMS_CASES, ids=[c[0] for c in PARAMS_CASES])
def test_params_case(case, given, words):
    bad = copy.deepcopy(P.load())
    _EDITS[case](bad)
    with pytest.raises(P.ParamsError) as err:
        P.validate(bad)
    for w in words:
        assert w in str(err.value), (case, str(err.value))


def test_an_unknown_rule_is_named_once():
    bad = copy.deepcopy(P.load())
    _EDITS["unknown rule name"](bad)
    with pytest.raises(P.ParamsError) as err:
        P.validate(bad)
    assert str(err.value).count("'rectangulr'") == 1, str(err.value)


def _words(case):
    return next(c[2] for c in OTHER_CASES if c[0] == case)


def _check(case, msg):
    for w in _words(case):
        assert w in msg, (case, msg)


def test_params_yaml_not_yaml(tmp_path):
    f = tmp_path / "params.yaml"
    f.write_text("profile: [full\n")
    with pytest.raises(P.ParamsError) as err:
        P.load(f)
    _check("params.yaml is not YAML", str(err.value))


def test_params_yaml_missing(tmp_path):
    with pytest.raises(P.ParamsError) as err:
        P.load(tmp_path / "params.yaml")
    _check("params.yaml missing", str(err.value))


def test_unknown_experiment_on_the_command_line():
    proc = subprocess.run([sys.executable, "-m", "experiments.training", "nosuch"], cwd=paths.ROOT,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    _check("unknown experiment on the command line", proc.stderr)


def test_bad_params_stop_the_stage_before_training(tmp_path):
    """The stage's CLI: one line on stderr, exit 2, no traceback, nothing trained."""
    params = yaml.safe_load(paths.PARAMS.read_text())
    _cfg(params, "rectangular")["rule_params"] = {"a": 1, "b": -1}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    code = ("import sys; from experiments.results import paths; "
            "from experiments.training import stage; from pathlib import Path; "
            "paths.PARAMS = Path(sys.argv[1]); sys.exit(stage.main(['suc']))")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "params.yaml")],
                          cwd=paths.ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: experiments.lenet.configs.rectangular.rule_params")
    assert "epoch" not in proc.stdout


def test_missing_processed_dataset(tmp_path):
    with pytest.raises(D.DataError) as err:
        datasets.load("mnist", tmp_path)
    _check("missing processed dataset", str(err.value))


@pytest.fixture()
def broken_mirror(mirror, tmp_path):
    bad = tmp_path / "mirror"
    shutil.copytree(mirror / "MNIST", bad / "MNIST")
    target = bad / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[:-100])
    return bad


def _mirror_params(m):
    return {"data": {"mirror": str(m)}}


def test_missing_dataset_file(broken_mirror, tmp_path):
    (broken_mirror / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(D.DataError) as err:
        D.write_datasets(_mirror_params(broken_mirror), tmp_path / "p", tmp_path / "raw",
                  only=("mnist",))
    _check("missing dataset file in the mirror", str(err.value))


def test_corrupted_dataset_file(broken_mirror, tmp_path):
    with pytest.raises(D.DataError) as err:
        D.write_datasets(_mirror_params(broken_mirror), tmp_path / "p", tmp_path / "raw",
                  only=("mnist",))
    _check("corrupted dataset file in the mirror", str(err.value))


def test_unwritable_mlflow_store(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{blocker / 'mlruns.db'}")
    with pytest.raises(tracking.TrackingError) as err:
        tracking.prepare_store()
    _check("unwritable MLflow store", str(err.value))
    assert str(blocker) in str(err.value)  # it names the path


def test_missing_latex_toolchain(monkeypatch):
    from paper import BuildError, compile

    monkeypatch.setattr(compile.shutil, "which", lambda tool: None)
    with pytest.raises(BuildError) as err:
        compile.build(paths.LAYOUT, Path(os.devnull))
    _check("missing LaTeX toolchain", str(err.value))


def test_every_other_case_has_a_test():
    checked = set(re.findall(r'_check\("([^"]+)"', Path(__file__).read_text()))
    names = [c[0] for c in OTHER_CASES]
    assert len(set(names)) == len(names) and set(names) == checked
