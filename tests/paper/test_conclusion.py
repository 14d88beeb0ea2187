"""What the Conclusion is built from: each claim's outcome per reading, the study's words and
the evidence beside it, the compute from the train stages' timings, the gradient-direction
numbers, the results' date, and the published comparison table."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from experiments.analysis import claims as claims_stage
from experiments.results import paths
from paper import NOT_COMMITTED, BuildError, document, latex, numbers
from paper import placeholders as build
from tests.paper.test_tables import _config, _metrics, _write


def _summary(claim_id, paper, tuned, rows=2, experiment="lenet"):
    counts = {"supported": 0, "not supported": 0, "inconclusive": 0}
    return {"id": f"claim_{claim_id}", "claim_id": claim_id, "kind": "summary",
            "claim": f"{claim_id} trains as well", "study": "does not impair learning",
            "experiment": experiment if rows else "", "rows": rows, "folded": [],
            "paper": {"verdict": paper, "counts": counts, "worst_diff": -0.01, "rows": rows},
            "tuned": {"verdict": tuned, "counts": counts, "worst_diff": -0.02, "rows": rows}}


CLAIMS = [_summary("constant", "supported", "supported"),
          _summary("noise", "not supported", "not supported"),
          _summary("shaped", "inconclusive", "supported"),
          _summary("jamming", "mixed", "mixed", experiment="cnn, cnn_fashion"),
          _summary("sign", "inconclusive", "inconclusive", rows=0)]


def _layout(tmp_path) -> paths.Layout:
    layout = paths.Layout(tmp_path)
    layout.claims_json.parent.mkdir(parents=True, exist_ok=True)
    layout.claims_json.write_text(json.dumps(CLAIMS))
    return layout


def test_each_claims_outcome_per_reading_and_where_the_readings_agree(tmp_path):
    values: dict = {}
    numbers._claims_numbers(_layout(tmp_path), values, {})
    assert values["claims.tuned.outcome.supported"] == ["constant", "shaped"]
    assert values["claims.paper.outcome.supported"] == ["constant"]
    assert values["claims.paper.outcome.inconclusive"] == ["shaped"]  # untested: not here
    assert values["claims.tuned.outcome.not_supported"] == ["noise"]
    assert values["claims.tuned.outcome.mixed"] == ["jamming"]
    assert values["claims.untested"] == ["sign"]
    assert values["claims.agree"] == ["constant", "noise", "jamming"]
    assert values["claims.differ"] == ["shaped"]
    assert values["claims.tuned.untested"] == ["sign"]


def test_a_claim_with_no_tuned_row_is_untested_tuned_and_in_no_comparison(tmp_path):
    no_search = _summary("sweep", "supported", "inconclusive")
    no_search["tuned"]["rows"] = 0
    layout = _layout(tmp_path)
    layout.claims_json.write_text(json.dumps([*CLAIMS, no_search]))
    values: dict = {}
    numbers._claims_numbers(layout, values, {})
    assert values["claims.tuned.untested"] == ["sign", "sweep"]
    assert "sweep" not in values["claims.tuned.outcome.inconclusive"]
    assert values["claims.paper.outcome.supported"] == ["constant", "sweep"]
    assert "sweep" not in values["claims.agree"] + values["claims.differ"]


@pytest.mark.parametrize("names, text", [([], "none"), (["a"], "`a`"),
                                         (["a", "b"], "`a` and `b`"),
                                         (["a", "b", "c"], "`a`, `b` and `c`")])
def test_ids_read_as_a_sentence(names, text):
    numbers_file = {"sources": {}, "values": {"claims.agree": names}}
    assert build.substitute("{{claims.agree | ids}}", numbers_file, "paper.md") == text


def _timings(layout: paths.Layout, name: str, epochs: list[list[float]], threads=1) -> None:
    runs = {f"seed_{i}": {"epoch_seconds": e, "mean_epoch_seconds": sum(e) / len(e)}
            for i, e in enumerate(epochs)}
    record = {"experiment": name, "device": "cpu", "stage_seconds": 99.0,
              "torch_threads": threads, "configs": {"a": {"runs": runs}}}
    layout.timings.mkdir(parents=True, exist_ok=True)
    (layout.timings / f"{name}.json").write_text(json.dumps(record))


def test_compute_is_the_runs_epoch_seconds_times_their_threads(tmp_path):
    layout = paths.Layout(tmp_path)
    _timings(layout, "one", [[1800.0, 1800.0], [3600.0]])  # 2 h on one thread
    _timings(layout, "two", [[900.0]], threads=4)  # 15 min on four threads: 1 core-hour
    values: dict = {}
    numbers._compute_numbers(layout, values, {})
    assert values["compute.one.core_hours"] == 2.0 and values["compute.one.runs"] == 2
    assert values["compute.two.core_hours"] == 1.0
    assert values["compute.core_hours"] == 3.0 and values["compute.runs"] == 3
    assert values["compute.devices"] == ["cpu"]


def test_gradient_direction_numbers_over_the_second_half_of_training(tmp_path):
    layout = paths.Layout(tmp_path)
    layout.diagnostics.mkdir(parents=True)
    rows = ["config,seed,step,parameter,cosine,sign_agreement,norm_ratio"]
    for step, cos, ratio in ((0, 0.8, 2.0), (50, 0.4, 3.0), (100, 0.0, "inf"),
                             (150, 0.2, 5.0)):
        rows += [f"constant,0,{step},0.weight,{cos},1.0,{ratio}",
                 f"constant,0,{step},0.bias,{cos},1.0,{ratio}"]
    (layout.diagnostics / "lenet.csv").write_text("\n".join(rows) + "\n")
    values: dict = {}
    numbers._diagnostics_numbers(layout, values, {})
    p = "diagnostics.lenet.constant.0.weight"
    assert values[f"{p}.first"] == 0.8 and values[f"{p}.late.from_step"] == 100
    assert values[f"{p}.late.mean"] == pytest.approx(0.1)
    assert values[f"{p}.late.max"] == pytest.approx(0.2)
    assert values[f"{p}.late.true_zero"] == 0.5  # the true gradient zero at step 100
    assert values[f"{p}.late.norm_ratio"] == 5.0  # the median where it is not
    assert not any(".0.bias." in k for k in values)  # weights and `all` only


def test_the_results_date_is_the_last_commit_of_dvc_lock(tmp_path):
    layout = paths.Layout(tmp_path)
    assert numbers.results_date(layout) == NOT_COMMITTED  # no repository
    env = {"GIT_COMMITTER_DATE": "2026-03-04T12:00:00", "GIT_AUTHOR_DATE": "2026-03-04T12:00:00",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"}
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    assert numbers.results_date(layout) == NOT_COMMITTED  # no commit of dvc.lock yet
    (tmp_path / "dvc.lock").write_text("schema: '2.0'\n")
    subprocess.run(["git", "add", "dvc.lock"], cwd=tmp_path, check=True)
    subprocess.run(["git", "commit", "-qm", "results"], cwd=tmp_path, check=True, env=env)
    (tmp_path / "other").write_text("x")
    subprocess.run(["git", "add", "other"], cwd=tmp_path, check=True)
    env |= {"GIT_COMMITTER_DATE": "2026-05-06T12:00:00"}
    subprocess.run(["git", "commit", "-qm", "later"], cwd=tmp_path, check=True, env=env)
    assert numbers.results_date(layout) == "2026-03-04"


# ---------------------------------------------------------------- the claims table

def test_evidence_goes_to_the_experiment_with_the_longest_name_in_the_papers_order():
    labels = ["fig:activations", "tab:lenet", "fig:cnn_jamming", "fig:cnn", "tab:cnn",
              "fig:cnn_cosine", "tab:cnn_fashion", "fig:cnn_fashion_jamming"]
    assert latex.evidence(["cnn"], labels, {"cnn_fashion"}) == [
        "tab:cnn", "fig:cnn_jamming", "fig:cnn", "fig:cnn_cosine"]
    assert latex.evidence(["cnn_fashion"], labels, {"cnn"}) == ["tab:cnn_fashion",
                                                                "fig:cnn_fashion_jamming"]
    assert latex.evidence(["cnn", "lenet"], labels, {"cnn_fashion"})[:2] == ["tab:lenet",
                                                                           "tab:cnn"]
    assert latex.evidence(["bnn"], labels) == []


def test_the_papers_labels_in_its_order():
    text = ("{{table: a | label=tab:a}}\n![x\\label{fig:b}](b.pdf)\n"
            "{{table: c | place=appendix | label=tab:c}}\n![y\\label{fig:a_z}](z.pdf)")
    assert document.labels_in(text) == ["tab:a", "fig:b", "tab:c", "fig:a_z"]


def test_the_claims_table_quotes_the_study_and_names_the_evidence(tmp_path):
    layout = _layout(tmp_path)
    tex = latex.render_claims(layout, "reports/claims.json", "paper.md:1",
                              ["tab:lenet", "fig:lenet_cosine", "tab:cnn"]).inline
    summary = tex.split(r"\end{table}")[0]
    assert summary.count("\u201cdoes not impair learning\u201d") == len(CLAIMS)
    assert r"\textit{Tested}: constant trains as well" in summary
    constant = summary.split(r"\textit{constant}")[1].split(r"\textit{noise}")[0]
    assert r"Table \ref{tab:lenet}; Figure \ref{fig:lenet_cosine}" in constant
    jamming = summary.split(r"\textit{jamming}")[1]
    assert r"Table \ref{tab:cnn}" in jamming and "tab:lenet" not in jamming.split("sign")[0]
    assert "no configuration tests it" in summary.split(r"\textit{sign}")[1]
    assert r"every row in Table \ref{tab:claim_rows}" in summary


@pytest.mark.parametrize("statement, words", [
    ("A constant backward trains.", "expected a mapping with the non-empty texts study, "
                                    "reading"),
    ({"reading": "r"}, "claims.statements.bad"),
    ({"study": "s", "reading": "r", "extra": "e"}, "'extra'"),
    ({"study": " ", "reading": "r"}, "non-empty")])
def test_a_claim_needs_the_studys_words_and_our_reading(statement, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        claims_stage.check_statements({"ok": {"study": "s", "reading": "r"}, "bad": statement})


# ---------------------------------------------------------------- the published numbers

def test_our_error_beside_the_published_one_as_a_paper_table(tmp_path):
    layout = paths.Layout(tmp_path)
    _write(layout, "fb", {"bp": _config("d(ReLU)")}, {"bp": _metrics()})
    with pytest.raises(BuildError, match="has no `published` numbers"):
        latex.render_table(layout, "fb", "| rows=published", "paper.md:3")
    with pytest.raises(BuildError, match="rows='both'; it is one of configurations, published"):
        latex.render_table(layout, "fb", "| rows=both", "paper.md:3")
    runs = json.loads(layout.report("runs", "fb").read_text())
    runs["published"] = {"source": "biotorch, Benchmarks.md", "top1_error": {"bp": 0.91}}
    layout.report("runs", "fb").write_text(json.dumps(runs))
    table = latex.render_table(layout, "fb", "| rows=published", "paper.md:3").inline
    assert r"\label{tab:fb_published}" in table and "biotorch, Benchmarks.md" in table
    row = table.split(r"\midrule")[1]
    assert "10.0" in row and "0.91" in row  # our error (100 - 90 %) beside the published
    cells = [c.strip() for c in row.split(r"\\")[0].split("&")]
    assert cells[2].startswith("10.00") and cells[-1] == "0.91"  # final error; published
