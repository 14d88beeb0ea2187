"""Claims judged twice: against the baseline and against "our control" (issue 12).

Formula-level tests with hand-made metrics: no training.  Our control of a row is, of its
candidates (``params.controls_of``: its baseline and the configurations its grid's
``baseline`` target leaves free, e.g. lenet's ``standard_lr<lr>``) present in the metrics
with a mean, the one with the highest mean of the claims metric (params
``claims.control: best_mean``)."""

from __future__ import annotations

import json

import pytest

from experiments import config as P
from experiments.analysis import claims, tables, verdicts
from experiments.results import paths
from paper import document, latex
from paper import numbers as numbers_mod

PARAMS = P.load(import_modules=False)
SETTINGS = {**PARAMS["claims"], "metric": "final_test_acc", "tolerance": 0.01, "k_std": 2.0,
            "min_baseline": 0.5, "control": "best_mean"}


def _m(mean, std=0.0):
    return {"final_test_acc": {"mean": mean, "std": std}}


def _judge(metrics: dict, settings=SETTINGS, seeds=(0, 1, 2)) -> dict:
    specs = {e: P.resolve(PARAMS, e, "full") for e in metrics}
    runs = {e: {"profile": "full", "settings": {"seeds": list(seeds)}} for e in metrics}
    return {r["id"]: r for r in claims.judge(metrics, runs, settings, specs)}


# The paper-setting LeNet baseline at chance; the true derivative at lr 0.3 learns.
LENET = {"standard": _m(0.105, 0.008), "standard_lr0.1": _m(0.975, 0.002),
         "standard_lr0.3": _m(0.985, 0.001), "standard_lr1.0": _m(None, None),
         "constant": _m(0.982, 0.003), "rectangular": _m(0.983, 0.002),
         "noise_0.1": _m(0.115, 0.003), "noise_mult_0.1": _m(0.978, 0.004)}


def test_a_baseline_at_chance_is_inconclusive_a_control_that_learns_decides():
    rows = _judge({"lenet": LENET})
    r = rows["lenet_constant"]
    assert r["baseline"] == "standard" and r["verdict"] == "inconclusive"
    # standard_lr0.03 was not run, standard_lr1.0 has no mean (diverged): no candidates
    assert r["control_candidates"] == ["standard", "standard_lr0.1", "standard_lr0.3"]
    assert r["control"] == "standard_lr0.3" and not r["control_is_baseline"]
    assert (r["control_mean"], r["control_std"]) == (0.985, 0.001)
    assert r["control_diff"] == pytest.approx(-0.003, abs=1e-9)
    assert r["control_diff_std"] == pytest.approx((0.003**2 + 0.001**2) ** 0.5, abs=1e-6)
    assert r["control_verdict"] == "supported"
    # the same verdict function: far below a control that learned, beyond the spread
    noise = rows["lenet_noise_0.1"]
    assert noise["verdict"] == "inconclusive" and noise["control_verdict"] == "not supported"
    assert rows["lenet_noise_mult_0.1"]["control_verdict"] == "supported"
    assert rows["lenet_noise_mult_0.1"]["claim_id"] == "noise_multiplicative"


@pytest.mark.parametrize("means, expected", [
    ({"standard": 0.9, "standard_lr0.1": 0.95, "standard_lr0.3": 0.97}, "standard_lr0.3"),
    ({"standard": 0.9, "standard_lr0.1": 0.98, "standard_lr0.3": 0.97}, "standard_lr0.1"),
    ({"standard": 0.99, "standard_lr0.1": 0.98}, "standard"),          # the baseline is best
    ({"standard": 0.97, "standard_lr0.1": 0.97}, "standard"),          # a tie: the baseline
    ({"standard": 0.5, "standard_lr0.1": None, "standard_lr1.0": 0.6}, "standard_lr1.0"),
])
def test_the_candidate_with_the_best_mean_is_our_control(means, expected):
    metrics = {name: _m(mean, 0.01 if mean is not None else None)
               for name, mean in means.items()} | {"constant": _m(0.96, 0.01)}
    r = _judge({"lenet": metrics})["lenet_constant"]
    assert r["control"] == expected
    assert r["control_is_baseline"] == (expected == "standard")
    assert r["control_mean"] == means[expected]
    candidates = ["standard", "standard_lr0.1", "standard_lr0.3", "standard_lr1.0"]
    assert verdicts.pick_control(candidates, metrics, "final_test_acc", "best_mean") == expected


def test_a_row_with_no_other_candidate_has_its_baseline_as_control():
    rows = _judge({"suc": {"standard": _m(0.99, 0.001), "constant": _m(0.95, 0.01)},
                   "lenet": {"standard": _m(0.105, 0.008), "constant": _m(0.98, 0.003)},
                   "bnn": {"logistic_d8": _m(0.9), "step_constant_d8": _m(0.95),
                           "logistic_d16": _m(0.9), "step_constant_d16": _m(0.85)}})
    for rid in ("suc_constant", "lenet_constant", "bnn_step_constant_d8",
                "bnn_step_constant"):  # the last: bnn's aggregate over d
        r = rows[rid]
        assert r["control_is_baseline"] and r["control_verdict"] == r["verdict"], rid
        assert (r["control_mean"], r["control_std"]) == (r["baseline_mean"], r["baseline_std"])
        assert (r["control_diff"], r["control_diff_std"]) == (r["diff_mean"], r["diff_std"])
    assert rows["suc_constant"]["control"] == "standard"
    assert rows["suc_constant"]["control_candidates"] == ["standard"]
    agg = rows["bnn_step_constant"]
    assert agg["kind"] == "aggregate" and agg["control"] == agg["baseline"] == "logistic (every d)"
    assert rows["claim_step"]["control_not_baseline"] == 0
    label = tables.control_label(rows["suc_constant"])
    assert label == "the baseline (no other candidate run)"
    md = claims.to_markdown(list(rows.values()), SETTINGS, {"suc": "full"})
    assert "our control is the baseline in every row (the verdicts coincide)" in md
    assert "These metrics hold no candidate other than the baselines." in md


def test_claim_summaries_count_both_verdicts():
    rows = _judge({"lenet": LENET})
    c = rows["claim_constant"]
    assert c["verdict"] == "inconclusive" and c["control_verdict"] == "supported"
    assert c["counts"] == {"supported": 0, "not supported": 0, "inconclusive": 1}
    assert c["control_counts"] == {"supported": 1, "not supported": 0, "inconclusive": 0}
    assert c["control_worst_diff"] == pytest.approx(-0.003, abs=1e-9)
    assert c["worst_diff"] == pytest.approx(0.982 - 0.105, abs=1e-9)
    assert c["control_not_baseline"] == 1 and c["control"] == "our control"
    n = rows["claim_noise"]
    assert n["counts"]["inconclusive"] == 1 and n["control_counts"]["not supported"] == 1
    assert n["verdict"] == "inconclusive" and n["control_verdict"] == "not supported"
    empty = rows["claim_jamming_alternative"]
    assert empty["rows"] == 0 and empty["control_verdict"] == "inconclusive"
    assert empty["control_worst_diff"] is None


def test_both_verdicts_mixed_against_our_control():
    metrics = dict(LENET, triangular=_m(0.90, 0.002))
    c = _judge({"lenet": metrics})["claim_shaped"]
    assert c["verdict"] == "inconclusive"  # every row against the baseline at chance
    assert c["control_verdict"] == "mixed"  # rectangular supported, triangular not
    assert c["control_counts"] == {"supported": 1, "not supported": 1, "inconclusive": 0}


def test_an_unknown_control_rule_is_an_error_naming_the_accepted_ones():
    with pytest.raises(P.ParamsError, match=r"claims\.control.*'best_median'.*best_mean"):
        _judge({"lenet": LENET}, {**SETTINGS, "control": "best_median"})


def test_the_markdown_names_our_control_and_explains_it():
    rows = _judge({"lenet": LENET})
    md = claims.to_markdown(list(rows.values()), SETTINGS, {"lenet": "full"})
    assert "**Our control**" in md and "`claims.control: best_mean`" in md
    assert "highest mean `final_test_acc` over seeds" in md
    assert "favours our control" in md and "at chance" in md
    assert ("Candidates other than baselines in these metrics: `lenet`: `standard_lr0.1`, "
            "`standard_lr0.3`.") in md
    assert "## `claim_constant`: inconclusive (against our control: supported)" in md
    assert ("| Our control | Our control (%) | Diff., our control (pts) | "
            "Verdict, our control |") in md
    line = next(x for x in md.splitlines() if x.startswith("| `lenet_constant`"))
    assert ("| inconclusive | standard_lr0.3 (best of 3) | 98.50 ± 0.10 | -0.30 ± 0.32 | "
            "supported |") in line
    summary = next(x for x in md.splitlines() if x.startswith("| Claim |"))
    assert "Verdict, our control" in summary and "S / N / I, our control" in summary
    assert "another configuration than the baseline in 1 of 1 rows" in md


def test_the_paper_tables_show_both_verdicts(tmp_path):
    rows = _judge({"lenet": LENET, "suc": {"standard": _m(0.99), "constant": _m(0.995)},
                   "bnn": {"logistic_d8": _m(0.9), "step_constant_d8": _m(0.95)}})
    layout = paths.Layout(tmp_path)
    layout.claims_json.parent.mkdir(parents=True)
    layout.claims_json.write_text(json.dumps(list(rows.values())))
    tex = latex.render_claims(layout, "reports/claims.json", "paper.md:1")
    assert r"\begin{tabularx}{\linewidth}" in tex  # the summary fits the text width
    # claim shaped (lenet_rectangular): two lines
    assert r"\quad against the baseline & 0 / 0 / 1 & +87.80 & \textbf{inconclusive}" in tex
    assert r"\quad against our control & 1 / 0 / 0 & -0.20 & \textbf{supported}" in tex
    # claim step: no row has another candidate: one line, both verdicts
    assert r"\quad against the baseline = our control & 1 / 0 / 0 & +5.00" in tex
    assert r"\quad no configuration testing it was run" in tex  # jamming
    assert r"\quad \texttt{standard\_lr0.3} & our control & 98.50" in tex
    assert r"\texttt{suc\_constant} & both &" in tex
    assert r"\texttt{lenet\_constant} & baseline & 10.50" in tex
    assert r"\emph{our control}" in tex
    # each line has the six columns of the longtable
    body = tex.split(r"\endfoot")[1]
    for line in body.splitlines():
        if line.endswith(r"\\") and "multicolumn" not in line:
            assert line.count(" & ") == 5, line


def test_numbers_count_the_verdicts_against_our_control(tmp_path):
    rows = _judge({"lenet": LENET})
    layout = paths.Layout(tmp_path)
    layout.claims_json.parent.mkdir(parents=True)
    layout.claims_json.write_text(json.dumps(list(rows.values())))
    values: dict = {}
    numbers_mod._claims_numbers(layout, values, {})
    assert values["claims.count"] == 4  # constant, rectangular, noise_0.1, noise_mult_0.1
    assert values["claims.verdicts.inconclusive"] == 4
    assert values["claims.control_verdicts.supported"] == 3
    assert values["claims.control_verdicts.not_supported"] == 1
    assert values["claims.control_other"] == 4
    assert values["claims.lenet_constant.control"] == "standard_lr0.3"
    assert values["claims.claim_noise.control_verdict"] == "not supported"


def test_an_experiment_with_no_results_yet_is_a_note_not_a_failure(tmp_path):
    layout = paths.Layout(tmp_path)
    numbers = {"values": {"pipeline.experiments": ["cnn", "lenet"]}}
    text = ("::: {.experiment name=\"cnn\"}\n## Gradient jamming\n{{table: cnn}}\n:::\n"
            "::: {.experiment name=\"lenet\"}\n## LeNet\n{{table: lenet}}\n:::")
    layout.metrics.mkdir(parents=True)
    layout.report("metrics", "lenet").write_text("{}")  # lenet's runs file is missing
    out = document.select_sections(text, numbers, layout)
    assert "## Gradient jamming" in out and "No results yet for this experiment (`cnn`)" in out
    assert "{{table: cnn}}" not in out
    assert "{{table: lenet}}" in out  # kept: the build then stops naming the missing file
    # --inputs (check=False) lists every declared experiment's files
    assert "{{table: cnn}}" in document.select_sections(text, numbers, layout, check=False)
