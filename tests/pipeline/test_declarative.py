"""Claims, tables and figures read the configurations' structure (grid axes, baseline,
claims), never their names: renaming configurations keeps every row, and a new axis value
appears everywhere with no code edit.  No training: the reports are made up from the
configurations' axis values, the same whatever the names."""

from __future__ import annotations

import copy
import json
import zlib

import pytest
import yaml

from experiments import config as P
from experiments.analysis import claims, comparisons, grid_figures, tables

METRIC_KEYS = ("final_test_acc", "best_test_acc", "final_train_loss", "final_test_loss")


def _acc(axes: dict) -> float:
    """A made-up accuracy that depends on the axis values only (not on the name)."""
    return 0.5 + (zlib.crc32(json.dumps(axes, sort_keys=True).encode()) % 500) / 1000


def fake_reports(name: str, spec: dict) -> tuple[dict, dict]:
    """(reports/metrics/<name>.json, reports/runs/<name>.json) as train@<name> would write
    them, with made-up numbers."""
    metrics, configs = {}, {}
    for cname, cfg in spec["configs"].items():
        acc = _acc(cfg["axes"])
        metrics[cname] = {k: {"mean": acc, "std": 0.01} for k in METRIC_KEYS}
        metrics[cname]["epochs_to_target"] = {"mean": 3.0, "std": 0.0, "reached": 2}
        configs[cname] = {**{k: cfg[k] for k in ("forward", "backward", "rule_params",
                                                  "provenance")},
                          "batch_size": cfg.get("batch_size", spec["batch_size"]),
                          "lr": cfg.get("lr", spec["lr"]), "diverged": 0,
                          "chance_accuracy": 0.1,
                          "runs": {f"seed_{s}": {"final_test_acc": acc + s / 100}
                                   for s in (0, 1)}}
    settings = {k: spec[k] for k in ("optimizer", "lr", "momentum", "batch_size", "epochs",
                                     "target_accuracy")} | {"seeds": [0, 1]}
    details = {"experiment": name, "stage": f"train@{name}", "profile": "full",
               "title": spec["title"], "dataset": spec["dataset"], "settings": settings,
               "configs": configs}
    return metrics, details


def _with(params: dict, tmp_path, edit) -> dict:
    """``params`` edited, written to a temporary params.yaml and loaded (validated) back."""
    changed = copy.deepcopy(params)
    edit(changed)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(changed, sort_keys=False))
    return P.load(path)


def _everything(params: dict, names) -> dict:
    """Per experiment: its claims rows, table rows and figure contents, keyed by the
    configurations' axis values (so two namings compare equal)."""
    specs = {n: P.resolve(params, n, "full") for n in names}
    reports = {n: fake_reports(n, specs[n]) for n in names}
    rows = claims.judge({n: reports[n][1] for n in names}, params["claims"], specs)
    out = {}
    for n in names:
        spec, (metrics, details) = specs[n], reports[n]
        axes = {c: json.dumps(cfg["axes"], sort_keys=True) for c, cfg in spec["configs"].items()}
        _, table = tables.experiment_table(metrics, details)
        out[n] = {
            "table": sorted(axes[r[0]] for r in table),
            "claims": sorted((axes[r["config"]], axes[r["reference"]], r["claim_id"],
                              r["paper"]["diff"], r["paper"]["low"], r["paper"]["verdict"])
                             for r in rows if r["experiment"] == n and r["kind"] == "row"),
            "aggregates": sorted((r["claim_id"], r["paper"]["diff"], r["paper"]["verdict"])
                                 for r in rows if r["experiment"] == n
                                 and r["kind"] == "aggregate"),
            "figures": [_figure(spec, metrics, f) for f in spec["figures"]],
            "n_configs": len(spec["configs"]),
        }
    return out


def _figure(spec, metrics, fig_spec) -> dict:
    if fig_spec["kind"] == "heatmap":
        return grid_figures.heatmap_grid(spec, metrics, fig_spec)
    return grid_figures.cells(spec, metrics, (fig_spec["lines"], fig_spec["x"]))


def _rename(p: dict) -> None:
    ex = p["experiments"]
    ex["lenet"]["grids"][0]["name"] = "lenet5-{rule}-backward"
    ex["cnn"]["grids"][0]["name"] = "{rule}-on-{activation}"
    ex["cnn"]["grids"][1]["name"] = "{rule}-{activation}-at-batch-{batch_size}"
    ex["lenet"]["grids"][1]["name"] = "on-the-constant-rule-{rule}"
    ex["cnn"]["grids"][2]["name"] = "reading-{reading}-on-{activation}"
    ex["bnn"]["grids"][0]["name"] = "unit-{unit}-with-{d}-inputs"
    for name in ("lenet", "cnn", "bnn"):  # these list configurations by name: not needed here
        ex[name].pop("diagnostics", None)
        for prof in ex[name].get("profiles", {}).values():
            prof.pop("diagnostics", None)
            prof.pop("select", None)


def test_renamed_configurations_keep_every_claim_table_row_and_figure_cell(tmp_path):
    params = P.load()
    renamed = _with(params, tmp_path, _rename)
    names = ("lenet", "cnn", "bnn")
    before, after = _everything(params, names), _everything(renamed, names)
    for n in names:
        new_names = set(P.resolve(renamed, n, "full")["configs"])
        assert not new_names & set(P.resolve(params, n, "full")["configs"])  # all renamed
        assert after[n] == before[n], n
        assert len(after[n]["table"]) == after[n]["n_configs"]
    assert len(after["lenet"]["claims"]) == 9  # three rules against `standard`, six noises
    # against `constant`
    assert sum('"constant"' in r[1] for r in after["lenet"]["claims"]) == 6
    # the jamming grid, full jamming at three batch sizes (each against the true derivative
    # at its batch size) and the ReLU readings
    assert len(after["cnn"]["claims"]) == 9 + 3 + 5
    assert len(after["bnn"]["claims"]) == 10 and len(after["bnn"]["aggregates"]) == 2
    heat = after["cnn"]["figures"][0]
    assert heat["rows"] == ["relu", "linear", "logistic"] and len(heat["cells"]) == 12
    assert len(after["bnn"]["figures"][0]) == 15


def test_a_new_axis_value_appears_in_table_heatmap_and_claims(tmp_path):
    def add_lr(p):
        p["experiments"]["mlp_sweep"]["grids"][0]["axes"]["lr"] = [0.01, 0.02, 0.05, 0.1]

    params = _with(P.load(), tmp_path, add_lr)
    spec = P.resolve(params, "mlp_sweep", "full")
    assert len(spec["configs"]) == 4 * 4 * 2
    assert spec["configs"]["bs32_lr0.02_constant"]["lr"] == 0.02
    metrics, details = fake_reports("mlp_sweep", spec)
    header, rows = tables.experiment_table(metrics, details)
    lr = header.index("LR")
    assert sum(r[lr] == "0.02" for r in rows) == 8
    fig_spec = spec["figures"][0]
    grid = grid_figures.heatmap_grid(spec, metrics, fig_spec)
    assert grid["columns"] == [0.01, 0.02, 0.05, 0.1]
    assert ("constant", 128, 0.02) in grid["cells"]
    fig = grid_figures.plot_heatmap(spec, metrics, fig_spec, "sweep")
    assert "0.02" in [t.get_text() for t in fig.axes[0].get_xticklabels()]
    rows = claims.judge({"mlp_sweep": details}, params["claims"], {"mlp_sweep": spec})
    assert {r["config"] for r in rows if r["kind"] == "row" and "_lr0.02_" in r["config"]} == {
        f"bs{b}_lr0.02_constant" for b in (16, 32, 64, 128)}


@pytest.mark.parametrize("name", ["suc", "mlp_sweep", "lenet", "cnn", "bnn"])
def test_every_configuration_has_its_baseline_by_axis_values(name):
    spec = P.resolve(P.load(), name, "full")
    for cname, cfg in spec["configs"].items():
        base = comparisons.baseline_of(cname, spec)
        if base is None:  # a reference: the true derivative
            assert cfg["backward"] == f"d({cfg['forward']})", cname
        elif cfg["backward"] == "noise":  # noise on the constant rule: against that rule
            assert spec["configs"][base]["backward"] == "d(Linear)" and cfg["claims"], cname
        else:
            b = spec["configs"][base]
            assert b["backward"] == f"d({b['forward']})" and cfg["claims"], cname
            assert b["forward"] == cfg["forward"] or name == "bnn"
