"""The layer feedback experiments (``feedback``, ``feedback_fashion``): their configurations bind
freegrad's feedback rules, train on the autograd loop, and the report sets our top-1 error
beside biotorch's published one."""

import copy
import shutil

import freegrad as fg
import pytest
import torch

from experiments import config as P
from experiments.config.schema import ParamsError
from experiments.results import paths
from experiments.tasks import lenet5
from experiments.training import binding
from tests.conftest import new_workspace, sh

EXPERIMENTS = ("feedback", "feedback_fashion")


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_feedback_mode_is_an_arm_and_none_takes_the_cpp_step(name):
    spec = P.resolve(P.load(), name, "full")
    assert list(spec["configs"]) == ["bp", "fa", "usf", "brsf", "frsf"]
    assert set(spec["published"]["top1_error"]) == set(spec["configs"])
    for cname, cfg in spec["configs"].items():
        if cname == "bp":
            assert binding.is_true_derivative(cfg)
            continue
        assert cfg["scope"] == "feedback" and cfg["backward"] in fg.names("feedback")
        assert not lenet5.fast_fit_supports(cfg)  # the C++ step backpropagates through W


def test_feedback_configurations_build_feedback_layers():
    spec = P.resolve(P.load(), "feedback", "smoke")
    meta = {"classes": 10}
    fa = lenet5.build_model(spec, spec["configs"]["fa"], meta)
    bp = lenet5.build_model(spec, spec["configs"]["bp"], meta)
    assert sum(isinstance(m, (fg.FeedbackLinear, fg.FeedbackConv2d)) for m in fa.modules()) == 5
    assert not any(isinstance(m, (fg.FeedbackLinear, fg.FeedbackConv2d)) for m in bp.modules())
    x = torch.rand(4, 1, 28, 28)
    with binding.rule_context(spec["configs"]["fa"], seed=0):
        fa(x).sum().backward()
    assert set(fg.diagnostics.feedback_angles(fa)) == {"0", "3", "7", "9", "11"}


def test_params_refuse_a_rule_in_the_wrong_scope_and_unknown_published_configs():
    params = P.load(import_modules=False)
    bad = copy.deepcopy(params)
    bad["experiments"]["feedback"]["grids"][0]["axes"]["rule"]["fa"]["scope"] = "activations"
    with pytest.raises(ParamsError, match=r"configs\.fa\.scope: 'activations' for rule 'fa'"):
        P.checks.validate(bad, import_modules=False)
    bad = copy.deepcopy(params)
    bad["experiments"]["feedback"]["published"]["top1_error"]["dfa"] = 1.61
    with pytest.raises(ParamsError, match=r"published\.top1_error: unknown value 'dfa'"):
        P.checks.validate(bad, import_modules=False)


def test_the_smoke_profile_trains_logs_to_mlflow_and_writes_the_table(tmp_path_factory):
    ws = new_workspace(tmp_path_factory, "feedback")
    repo, env = ws["repo"], ws["env"]
    (repo / "data" / "processed").mkdir(parents=True)
    source = paths.ROOT / "data" / "processed" / "mnist.pt"
    if source.is_file():
        shutil.copy2(source, repo / "data" / "processed" / "mnist.pt")
    else:
        sh(["python", "-m", "experiments.data"], repo, env, timeout=900)
    params = repo / "params.yaml"
    params.write_text(params.read_text().replace("\nprofile: full\n", "\nprofile: smoke\n"))
    env = {**env, "PYTHONPATH": f"{repo / 'libs' / 'freegrad' / 'src'}:{repo}"}
    sh(["python", "-m", "experiments.training", "feedback"], repo, env, timeout=900)
    sh(["python", "-m", "experiments.analysis.report"], repo, env, timeout=300)

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("feedback").experiment_id])
    statuses = {r.info.run_name: r.info.status for r in runs}
    assert {"bp-seed0", "fa-seed0"} <= set(statuses)  # and the tuned twins of the search
    assert set(statuses.values()) == {"FINISHED"}
    assert set(statuses) <= {"bp-seed0", "fa-seed0", "bp_tuned-seed0", "fa_tuned-seed0"}
    table = (repo / "reports" / "tables" / "feedback.md").read_text()
    assert "Published top-1 error (%)" in table and "| fa | ReLU / fa(init=kaiming) |" in table
    assert "| usf | not run in this profile |" in table  # smoke trains bp and fa only
    csv = (repo / "reports" / "tables" / "feedback.csv").read_text().splitlines()
    trained = len(statuses)  # bp, fa and their tuned twins: one row each
    assert "published_top1_error" in csv[0] and len(csv) == 1 + trained
