"""The paper's tables (paper.latex, paper.document): the same columns and type size in every
table, the long ones in the appendix, a diverged configuration and a huge loss as a reader
should meet them, claim statements in typeset maths; and, where the paper's toolchain works,
a small paper built with the real template and read back."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from experiments.results import paths
from paper import BuildError, compile, document, latex
from tests.conftest import paper_toolchain_problem

ROOT = paths.ROOT
STAT = {"mean": 0.9, "std": 0.01}
NONE = {"mean": None, "std": None}


def _config(backward="d(Logistic)", lr=0.01, **extra):
    return {"forward": "Logistic", "backward": backward, "rule_params": {}, "provenance": "t",
            "batch_size": 64, "lr": lr, "chance_accuracy": 0.1, "diverged": 0, **extra}


def _metrics(**over):
    out = {k: dict(STAT) for k in ("final_test_acc", "best_test_acc", "final_train_loss",
                                   "final_test_loss")}
    return out | {"epochs_to_target": {"mean": 2.0, "std": 0.0, "reached": 3}} | over


def _write(layout: paths.Layout, name: str, configs: dict, metrics: dict) -> None:
    details = {"experiment": name, "stage": f"train@{name}", "profile": "full",
               "title": f"Experiment {name}", "dataset": "mnist",
               "settings": {"optimizer": "sgd", "lr": 0.01, "momentum": 0.0, "batch_size": 64,
                            "epochs": 2, "seeds": [0, 1, 2], "target_accuracy": 0.9},
               "configs": configs}
    for kind, data in (("metrics", metrics), ("runs", details)):
        path = layout.report(kind, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))


def _short(layout: paths.Layout, name: str = "small") -> None:
    """Two configurations: one diverged on every seed, one with a huge loss."""
    _write(layout, name, {"ok": _config(), "gone": _config("d(Linear)", diverged=3)},
           {"ok": _metrics(final_train_loss={"mean": 1178186134.2379, "std": 1824813063.7443}),
            "gone": _metrics(final_test_acc=NONE, best_test_acc=NONE, final_train_loss=NONE,
                             final_test_loss=NONE,
                             epochs_to_target={"mean": None, "std": None, "reached": 0})})


def _long(layout: paths.Layout, name: str = "big", n: int = latex.LONG_ROWS + 1) -> None:
    configs = {f"c{i}": _config(lr=0.01 * (1 + i % 2)) for i in range(n)}
    _write(layout, name, configs, {c: _metrics() for c in configs})


def _heads(tex: str) -> list[str]:
    """The bold words of a table's head, in order (a wrapped header gives several)."""
    return re.findall(r"\\textbf\{([^}]*)\}", tex.split(r"\midrule")[0])


# ---------------------------------------------------------------- escaping

def test_maths_in_a_statement_stays_maths_and_code_is_type():
    tex = latex.escape(r'read as $g\,(1 + \sigma\varepsilon)$ (`mode="sign"`), 5 $ each')
    assert r"$g\,(1 + \sigma\varepsilon)$" in tex
    assert r'\texttt{mode="sign"}' in tex
    assert r"5 \$ each" in tex  # a lone dollar is a dollar


def test_a_power_of_ten_is_typeset():
    assert latex.escape("1.18×10⁹ ± 1.82×10⁹") == (
        r"1.18\ensuremath{\times10^{9}} \ensuremath{\pm} 1.82\ensuremath{\times10^{9}}")


def test_claim_statements_write_their_formulas_as_maths():
    statements = yaml.safe_load((ROOT / "params.yaml").read_text())["claims"]["statements"]
    for claim, statement in statements.items():
        prose = re.sub(r"\$[^$]+\$|`[^`]*`", "", statement["reading"])
        assert not re.search(r"\b(sigma|eps|varepsilon)\b|sign\(g\)|\bg \(", prose), claim
    assert r"$g\,(1 + \sigma\varepsilon)$" in statements["noise_multiplicative"]["reading"]
    assert r"$\mathrm{sign}(g)\,u$" in statements["jamming_alternative"]["reading"]


# ---------------------------------------------------------------- one table

def test_every_table_has_the_same_columns_whatever_the_experiment(tmp_path):
    layout = paths.Layout(tmp_path)
    _short(layout)
    _long(layout)
    small = latex.render_table(layout, "small", "| label=tab:small", "paper.md:1").inline
    big = latex.render_table(layout, "big", "", "paper.md:2").deferred
    metrics = r"Final test acc. (\%) Best test acc. (\%) Final train loss Final test loss"
    assert " ".join(_heads(small)) == f"Configuration {metrics}"
    assert " ".join(_heads(big)) == f"Configuration LR {metrics}"  # the axis its rows vary


def test_one_type_size_and_no_scaling(tmp_path):
    layout = paths.Layout(tmp_path)
    _short(layout)
    _long(layout)
    for tex in (latex.render_table(layout, "small", "", "p:1").inline,
                latex.render_table(layout, "big", "", "p:2").deferred):
        assert r"\gentablesize" in tex
        assert not re.search(r"\\(resizebox|scalebox|fitwidth|tiny|scriptsize|small)\b", tex)
    template = (ROOT / "paper" / "template.tex").read_text()
    assert "resizebox" not in template


def test_a_diverged_row_spans_its_metric_cells_and_a_huge_loss_is_typeset(tmp_path):
    layout = paths.Layout(tmp_path)
    _short(layout)
    tex = latex.render_table(layout, "small", "", "p:1").inline
    assert r"\multicolumn{4}{c}{\textit{diverged (3/3 seeds)}}" in tex
    assert "n/a" not in tex
    assert r"1.18\ensuremath{\times10^{9}}\ensuremath{\:\pm\:}1.82\ensuremath{\times10^{9}}" in tex
    assert not re.search(r"\d{7,}", tex)


def test_a_long_table_goes_to_the_appendix_a_short_one_stays(tmp_path):
    layout = paths.Layout(tmp_path)
    _short(layout)
    _long(layout)
    small = latex.render_table(layout, "small", "", "p:1")
    big = latex.render_table(layout, "big", "| label=tab:big", "p:2")
    assert small.inline.startswith(r"\begin{table}[htbp]") and not small.deferred
    assert not big.inline and big.label == "tab:big"
    assert r"\begin{xltabular}{\linewidth}" in big.deferred and "continued" in big.deferred
    forced_in = latex.render_table(layout, "big", "| place=body", "p:3")
    assert forced_in.inline.startswith(r"\begin{table}[htbp]") and not forced_in.deferred
    forced_out = latex.render_table(layout, "small", "| place=appendix", "p:4")
    assert r"\begin{xltabular}" in forced_out.deferred and not forced_out.inline


@pytest.mark.parametrize("opts, words", [("| columns=Configuration", "unknown table option"),
                                         ("| place=margin", "place='margin'"),
                                         ("| label=a | label=b", "given twice"),
                                         ("| label=", "has no value")])
def test_bad_table_options_stop_the_build(tmp_path, opts, words):
    layout = paths.Layout(tmp_path)
    _short(layout)
    with pytest.raises(BuildError, match=re.escape(words)):
        latex.render_table(layout, "small", opts, "paper.md:7")


# ---------------------------------------------------------------- the document

FRONT = "---\ntitle: t\ndate: 2026-01-01\n---\n\n"
NUMBERS = {"sources": {}, "values": {"pipeline.experiments": ["small", "big"]}}


def _paper(layout: paths.Layout, body: str) -> None:
    layout.paper_md.parent.mkdir(parents=True, exist_ok=True)
    layout.paper_md.write_text(FRONT + body)


def test_the_appendix_holds_the_long_tables_in_their_order(tmp_path):
    layout = paths.Layout(tmp_path)
    _short(layout)
    _long(layout)
    _long(layout, "bigger")
    _paper(layout, "# A\n\n{{table: big | label=tab:big}}\n\n{{table: small | label=tab:s}}\n\n"
           "# B\n\n{{table: bigger | label=tab:bigger}}\n\n# Appendix\n\n"
           "{{appendix: tables}}\n\n# References\n")
    text, inputs = document.expand(layout, NUMBERS)
    body, appendix = text.split("# Appendix")
    assert "xltabular" not in body and r"\label{tab:s}" in body
    assert appendix.index(r"\label{tab:big}") < appendix.index(r"\label{tab:bigger}")
    assert r"Tables \ref{tab:big} and \ref{tab:bigger} are set here" in appendix
    assert appendix.index("xltabular") < appendix.index("# References")
    assert "reports/runs/bigger.json" in inputs


def test_a_long_table_without_an_appendix_stops_the_build(tmp_path):
    layout = paths.Layout(tmp_path)
    _long(layout)
    _paper(layout, "# A\n\n{{table: big | label=tab:big}}\n")
    with pytest.raises(BuildError, match=r"tab:big .*no `\{\{appendix: tables\}\}` line"):
        document.expand(layout, NUMBERS)


def test_floats_stay_in_their_section():
    template = (ROOT / "paper" / "template.tex").read_text()
    assert r"\usepackage{placeins}" in template
    for heading in ("section", "subsection", "subsubsection"):
        assert rf"\pretocmd{{\{heading}}}{{\FloatBarrier}}" in template


# ---------------------------------------------------------------- built for real

def test_a_small_paper_built_with_the_template_reads_as_it_should(tmp_path):
    problem = paper_toolchain_problem()
    if problem:
        pytest.skip(problem)
    layout = paths.Layout(tmp_path)
    _short(layout)
    _long(layout, n=40)
    for rel in ("paper/template.tex", "paper/paper.bib"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text((ROOT / rel).read_text())
    _paper(layout, "# Results\n\nSee Tables \\ref{tab:small} and \\ref{tab:big}.\n\n"
           "{{table: small | label=tab:small}}\n\n{{table: big | label=tab:big}}\n\n"
           "# Appendix: the long tables\n\n{{appendix: tables}}\n")
    layout.numbers.parent.mkdir(parents=True, exist_ok=True)
    layout.numbers.write_text(yaml.safe_dump(NUMBERS))
    pdf = compile.build(layout, tmp_path / "out.pdf")
    text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"], capture_output=True,
                          text=True, check=True).stdout
    assert "Appendix: the long tables" in text
    assert "diverged (3/3 seeds)" in text and "n/a" not in text
    assert not re.search(r"\d{7,}", text)
    assert text.index("Appendix") < text.index("Table 2. Experiment big")
    assert "Table 2, continued" in text  # 40 rows: over a page, its head repeated


def test_an_appendix_with_no_long_table_says_so(tmp_path):
    layout = paths.Layout(tmp_path)
    _short(layout)
    _paper(layout, "# A\n\n{{table: small | label=tab:s}}\n\n# Appendix\n\n{{appendix: tables}}\n")
    text, _ = document.expand(layout, {"sources": {}, "values": {"pipeline.experiments": []}})
    assert text.rstrip().endswith("*No table is long enough to be set apart from the text.*")
