"""A real `dvc repro` of the smoke profile in a temporary copy of the repository."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from tests.conftest import sh

pytestmark = pytest.mark.slow

EXPERIMENTS = ("suc", "mlp", "mlp_sweep", "lenet", "cnn", "cnn_fashion", "bnn")
DIAGNOSED = ("lenet", "cnn", "cnn_fashion")
STAGES = ("data", *(f"train@{e}" for e in EXPERIMENTS), "report", "claims", "figures")


@pytest.fixture(scope="module")
def workspace(smoke_workspace):
    """The session's smoke `dvc exp run` (tests/conftest.py), shared with tests/paper."""
    return smoke_workspace


def test_smoke_repro_runs_every_stage(workspace):
    out = workspace["first"].stdout
    for stage in STAGES:
        assert f"Running stage '{stage}'" in out, out
    assert "profile: smoke" in (workspace["repo"] / "params.yaml").read_text()


def test_outputs(workspace):
    repo = workspace["repo"]
    for name in ("ones", "digits", "mnist", "fashion_mnist"):
        assert (repo / "data" / "processed" / f"{name}.pt").is_file()
    metrics = json.loads((repo / "reports/metrics/suc.json").read_text())
    details = json.loads((repo / "reports/runs/suc.json").read_text())
    assert list(metrics) == _reported(_smoke("suc"), details)
    for m in metrics.values():
        assert set(m) == {"final_test_acc", "best_test_acc", "final_train_loss",
                          "final_test_loss", "epochs_to_target"}
        assert 0.0 <= m["final_test_acc"]["mean"] <= 1.0 and m["final_test_acc"]["std"] >= 0
    assert details["profile"] == "smoke" and details["stage"] == "train@suc"
    for cname, cfg in details["configs"].items():
        assert len(cfg["runs"]) == 2 and cfg["provenance"]
        assert cfg["summary"]["final_test_acc"]["mean"] == metrics[cname]["final_test_acc"]["mean"]
    with open(repo / "reports/curves/suc.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(metrics) * 2 * (2 + 1)  # configs x seeds x (epochs + initial)
    assert {"config", "seed", "epoch", "train_loss", "test_acc"} <= set(rows[0])
    timings = json.loads((repo / "reports/timings/suc.json").read_text())
    assert timings["configs"]["standard"]["mean_epoch_seconds"]["mean"] > 0
    md = (repo / "reports/tables/suc.md").read_text()
    assert "| standard |" in md and "paper, Table 2" in md and "±" in md
    assert "s / epoch" not in md and "wall time" not in md  # DVC outputs hold no wall time
    numbers = yaml.safe_load((repo / "paper/generated/numbers.yaml").read_text())["values"]
    assert not [k for k in numbers if k.startswith("timings.") or "seconds" in k], numbers
    assert not (repo / "reports/tables/suc.tex").exists()  # LaTeX is the paper's (one renderer)
    png = (repo / "reports/figures/suc.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert (repo / "reports/figures/suc.pdf").read_bytes().startswith(b"%PDF")


def _smoke(name):
    from experiments import config as P

    return P.resolve(P.load(), name, "smoke")


def _reported(spec: dict, details: dict) -> list[str]:
    """The configurations a train stage reports: the experiment's, then the tuned twins its
    learning-rate search made (where an arm's chosen rate is not its own)."""
    arms = details.get("tuning", {}).get("arms", {})
    assert bool(arms) == bool(spec.get("tuning")), "a search exactly where params ask for one"
    return list(spec["configs"]) + [a["tuned_config"] for a in arms.values()
                                    if a["tuned_config"] not in spec["configs"]]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_in_smoke(workspace, name):
    repo = workspace["repo"]
    spec = _smoke(name)
    metrics = json.loads((repo / f"reports/metrics/{name}.json").read_text())
    details = json.loads((repo / f"reports/runs/{name}.json").read_text())
    assert list(metrics) == _reported(spec, details)
    assert details["profile"] == "smoke" and details["stage"] == f"train@{name}"
    for cname, m in metrics.items():
        assert 0.0 <= m["final_test_acc"]["mean"] <= 1.0
        assert details["configs"][cname]["provenance"]
        assert len(details["configs"][cname]["runs"]) == len(spec["seeds"])
    with open(repo / f"reports/curves/{name}.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(metrics) * len(spec["seeds"]) * (spec["epochs"] + 1)
    with open(repo / f"reports/diagnostics/{name}.csv") as f:
        diag = list(csv.DictReader(f))
    if name in DIAGNOSED:
        assert diag and {r["config"] for r in diag} <= set(spec["diagnostics"]["configs"])
        assert {"step", "parameter", "cosine", "sign_agreement", "norm_ratio"} <= set(diag[0])
        assert all(-1.0 <= float(r["cosine"]) <= 1.0 for r in diag)
        assert (repo / f"reports/figures/{name}_cosine.png").read_bytes().startswith(b"\x89PNG")
    else:
        assert diag == []
    md = (repo / f"reports/tables/{name}.md").read_text()
    assert all(f"| {c} |" in md for c in metrics) and "paper" in md and "±" in md
    with open(repo / f"reports/tables/{name}.csv") as f:
        table = list(csv.DictReader(f))
    assert [r["config"] for r in table] == list(metrics) and all(r["provenance"] for r in table)
    assert float(table[0]["final_test_acc_mean"]) == next(iter(metrics.values()))[
        "final_test_acc"]["mean"]
    assert (repo / f"reports/figures/{name}.png").read_bytes().startswith(b"\x89PNG")


def test_summary_figures(workspace):
    figs = workspace["repo"] / "reports/figures"
    for stem in ("activations", "bnn_accuracy_vs_d", "cnn_jamming", "cnn_fashion_jamming",
                 "mlp_sweep_grid"):
        assert (figs / f"{stem}.png").read_bytes().startswith(b"\x89PNG"), stem
        assert (figs / f"{stem}.pdf").read_bytes().startswith(b"%PDF"), stem


def test_claims_come_from_the_metrics_files(workspace):
    from experiments.analysis import claims
    from experiments.results import paths, records

    repo = workspace["repo"]
    rows = json.loads((repo / "reports/claims.json").read_text())
    metrics, runs = records.read_reports(paths.Layout(repo))
    from experiments import config as P

    params = P.load(repo / "params.yaml", import_modules=False)
    specs = {e: P.resolve(params, e) for e in EXPERIMENTS}
    assert rows == json.loads(json.dumps(claims.judge(
        {e: runs[e] for e in EXPERIMENTS}, params["claims"], specs)))
    by_id = {r["id"]: r for r in rows}
    for rid in ("suc_constant", "mlp_constant", "lenet_constant", "lenet_rectangular",
                "lenet_noise_0.1", "cnn_relu_full_jam", "cnn_relu_full_jam_bs128",
                "cnn_fashion_relu_full_jam", "bnn_step_constant", "bnn_step_rectangular_d8",
                "mlp_sweep_bs16_lr0.1_constant",
                "claim_constant", "claim_jamming", "claim_step"):
        assert rid in by_id, rid
    r = by_id["lenet_constant"]
    m = metrics["lenet"]
    assert r["reference"] == "standard" and by_id["lenet_noise_0.1"]["reference"] == "constant"
    assert r["paper"]["reference_mean"] == m["standard"]["final_test_acc"]["mean"]
    assert r["paper"]["config_mean"] == m["constant"]["final_test_acc"]["mean"]
    tuned = runs["lenet"]["tuning"]["arms"]["constant"]["tuned_config"]
    assert r["tuned"]["config"] == tuned
    assert r["tuned"]["config_mean"] == m[tuned]["final_test_acc"]["mean"]
    for reading in ("paper", "tuned"):
        assert r[reading]["verdict"] in ("supported", "not supported", "inconclusive")
    md = (repo / "reports/claims.md").read_text()
    assert "`claim_constant`" in md and "95 % confidence interval" in md


def test_mlflow_runs(workspace):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=workspace["env"]["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("suc")
    reported = json.loads((workspace["repo"] / "reports/runs/suc.json").read_text())["configs"]
    runs = client.search_runs([exp.experiment_id])
    names = sorted(r.info.run_name for r in runs)  # the tuned twins' too (a later test's
    assert {f"{c}-seed{s}" for c in reported for s in (0, 1)} <= set(names)  # rerun adds its)
    assert [n for n in names if n.split("-")[0] in ("standard", "constant")] == [
        "constant-seed0", "constant-seed1", "standard-seed0", "standard-seed1"]
    searched = client.search_runs([client.get_experiment_by_name("suc-tuning").experiment_id])
    assert searched and {r.data.tags["phase"] for r in searched} == {"tuning"}
    runs = [r for r in runs if r.data.tags["config"] in ("standard", "constant")]
    for r in runs:
        assert r.info.status == "FINISHED"
        assert r.data.tags["dvc_stage"] == "train@suc"
        assert r.data.tags["profile"] == "smoke"
        assert r.data.tags["freegrad_version"]
        assert len(r.data.tags["git_commit"]) >= 7
        assert r.data.params["lr"] == "0.1" and r.data.params["batch_size"] == "32"
        assert r.data.params["rule.backward"] in ("d(Logistic)", "d(Linear)")
        history = client.get_metric_history(r.info.run_id, "test_acc")
        assert [m.step for m in history] == [1, 2]
        assert {"train_loss", "train_acc", "test_loss", "epoch_seconds"} <= set(r.data.metrics)
        assert {a.path for a in client.list_artifacts(r.info.run_id)} == {
            "metrics.json", "curves.csv"}
    # The runs list can show each run's results; the experiment says what it reproduces.
    configs = json.loads((workspace["repo"] / "reports/runs/suc.json").read_text())["configs"]
    for r in runs:
        config, seed = r.data.tags["config"], r.data.tags["seed"]
        assert r.data.metrics["final_test_acc"] == configs[config]["runs"][f"seed_{seed}"][
            "final_test_acc"]
        assert "best_test_acc" in r.data.metrics
    assert "train@suc" in exp.tags["mlflow.note.content"]
    for name in EXPERIMENTS:
        spec = _smoke(name)
        details = json.loads((workspace["repo"] / f"reports/runs/{name}.json").read_text())
        runs = client.search_runs([client.get_experiment_by_name(name).experiment_id])
        assert sorted(r.info.run_name for r in runs) == sorted(
            f"{c}-seed{s}" for c in _reported(spec, details) for s in spec["seeds"])
        assert all(r.info.status == "FINISHED" for r in runs)
        assert all(r.data.tags["dvc_stage"] == f"train@{name}" for r in runs)
    cnn = {r.info.run_name: r for r in client.search_runs(
        [client.get_experiment_by_name("cnn").experiment_id])}
    assert cnn["relu_full_jam_bs128-seed0"].data.params["batch_size"] == "128"
    diag = [k for k in cnn["relu_full_jam-seed0"].data.metrics if k.startswith("diag/cosine/")]
    assert "diag/cosine/all" in diag and len(diag) == 11  # 10 parameter tensors + all


def test_rerun_with_nothing_changed_runs_nothing(workspace):
    out = sh(["dvc", "repro"], workspace["repo"], workspace["env"]).stdout
    assert "Running stage" not in out, out
    assert "Data and pipelines are up to date" in out
    status = sh(["dvc", "status"], workspace["repo"], workspace["env"]).stdout
    assert "up to date" in status.lower(), status


def test_retraining_gives_identical_metrics(workspace):
    """FREEGRAD_RETRAIN=1: every run is trained again (none is read from the run cache)."""
    repo, env = workspace["repo"], {**workspace["env"], "FREEGRAD_RETRAIN": "1"}
    # suc, and cnn: stochastic rules (full jamming) and gradient diagnostics.
    files = ["dvc.lock"] + [f"reports/{kind}/{name}.{ext}" for name in ("suc", "cnn")
                            for kind, ext in (("metrics", "json"), ("runs", "json"),
                                              ("curves", "csv"), ("diagnostics", "csv"))]
    before = {f: (repo / f).read_bytes() for f in files}
    for stage in ("train@suc", "train@cnn"):
        out = sh(["dvc", "repro", "--force", "--single-item", stage], repo, env).stdout
        assert f"Running stage '{stage}'" in out
        assert ": trained" in out and ": reused" not in out, out
    assert {f: (repo / f).read_bytes() for f in files} == before


def _ran(out):
    return {s for s in STAGES if f"Running stage '{s}'" in out}


@pytest.fixture()
def restored(workspace):
    """The workspace, with the test's edits undone afterwards: it is shared with tests/paper,
    which checks that the paper is up to date (whatever order the tests run in)."""
    repo = workspace["repo"]
    saved = {p: p.read_text()
             for p in (repo / "experiments/analysis/figures.py", repo / "params.yaml")}
    yield workspace
    for path, text in saved.items():
        path.write_text(text)
    sh(["dvc", "repro"], repo, workspace["env"])


def test_edits_rerun_exactly_what_they_affect(restored):
    repo, env = restored["repo"], restored["env"]
    # The forced retrain above changed no DVC output (wall times are none), so nothing is stale.
    settle = sh(["dvc", "repro"], repo, env).stdout
    assert "Running stage" not in settle, settle
    fig = repo / "experiments" / "analysis" / "figures.py"
    fig.write_text(fig.read_text() + "\n# an edit: the figures stage's code changed\n")
    assert _ran(sh(["dvc", "repro"], repo, env).stdout) == {"figures"}
    params = repo / "params.yaml"
    text = params.read_text()
    old = 'target_accuracy: 0.95   # "epochs to reach"'
    assert text.count(old) == 1
    params.write_text(text.replace(old, 'target_accuracy: 0.9   # "epochs to reach"'))
    # Retrains suc only; the metrics (epochs to target) change, so the tables, claims and
    # figures (which read the metrics) are redone.  (Up to the figures: the paper stage
    # quotes the table's column names, which this edit renames.)
    out = sh(["dvc", "repro", "report", "claims", "figures"], repo, env).stdout
    assert _ran(out) == {"train@suc", "report", "claims", "figures"}


def test_editing_analysis_or_the_paper_leaves_training_up_to_date(workspace):
    """A line appended to every analysis, figures, report and paper module (and a new
    analysis module) makes no train stage stale: they depend on the training packages only."""
    repo, env = workspace["repo"], workspace["env"]
    edited = [*sorted((repo / "experiments" / "analysis").glob("*.py")),
              *sorted((repo / "paper").glob("*.py")), repo / "experiments" / "same_results.py"]
    saved = {p: p.read_text() for p in edited}
    new = repo / "experiments" / "analysis" / "an_edit.py"
    try:
        for path in edited:
            path.write_text(path.read_text() + "\n# an edit outside training\n")
        new.write_text('"""A new analysis module."""\n')
        status = json.loads(sh(["dvc", "status", "--json"], repo, env).stdout)
        trains = [s for s in status if s.startswith("train@")]
        assert trains == [], {s: status[s] for s in trains}
        assert {"report", "claims", "figures"} <= set(status)  # the edits were seen
    finally:
        new.unlink(missing_ok=True)
        for path, text in saved.items():
            path.write_text(text)
