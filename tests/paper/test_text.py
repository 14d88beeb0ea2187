"""What a reader meets in the text: counts with their noun in the right number, opening and
closing quotes in the generated LaTeX, a dated DVC reference.  No pipeline, no TeX."""

from __future__ import annotations

import json
import re

import pytest

from experiments.results import paths
from paper import BuildError, latex
from paper import placeholders as build

ROOT = paths.ROOT
NUMBERS = {"sources": {}, "values": {"totals.n_experiments": 1, "totals.n_runs": 233,
                                     "runs.lenet.n_seeds": 3, "runs.bnn.epochs": 1.0}}


@pytest.mark.parametrize("placeholder, text", [
    ("{{totals.n_experiments | count:experiment}}", "1 experiment"),
    ("{{totals.n_runs | count:training run}}", "233 training runs"),
    ("{{runs.lenet.n_seeds | count:seed}}", "3 seeds"),
    ("{{runs.bnn.epochs | count:epoch}}", "1 epoch"),
    ("{{runs.lenet.n_seeds | count:analysis/analyses}}", "3 analyses"),
])
def test_count_puts_the_noun_in_the_right_number(placeholder, text):
    assert build.substitute(placeholder, NUMBERS, "paper.md") == text


@pytest.mark.parametrize("fmt", ["count", "count:"])
def test_count_needs_a_noun(fmt):
    with pytest.raises(BuildError, match="needs a noun"):
        build.substitute("{{runs.lenet.n_seeds | " + fmt + "}}", NUMBERS, "paper.md")


def test_the_paper_writes_no_plural_in_parentheses():
    text = (ROOT / "paper" / "paper.md").read_text(encoding="utf-8")
    assert not re.findall(r"\w\(s\)", text)
    assert "{{totals.n_experiments | count:experiment}}" in text


@pytest.mark.parametrize("raw, tex", [
    ('on "Ones" (tau = 0.5)', "on \u201cOnes\u201d (tau = 0.5)"),
    ("the study's 'derivative'", "the study's \u2018derivative\u2019"),
    ('`mode="sign"` and "x"', '\\texttt{mode="sign"} and \u201cx\u201d'),
])
def test_escape_pairs_opening_and_closing_quotes(raw, tex):
    assert latex.escape(raw) == tex


def test_table_caption_quotes_in_the_generated_latex(tmp_path):
    """The caption of a generated table (its experiment's title) opens and closes quotes."""
    layout = paths.Layout(tmp_path)
    details = {"experiment": "suc", "stage": "train@suc", "profile": "smoke",
               "title": 'Single unit on "Ones"', "dataset": "ones",
               "settings": {"optimizer": "sgd", "lr": 0.1, "momentum": 0.0, "batch_size": 32,
                            "epochs": 1, "target_accuracy": 0.95, "seeds": [0]},
               "configs": {"standard": {"forward": "Logistic", "backward": "d(Logistic)",
                                        "rule_params": {}, "provenance": "paper",
                                        "batch_size": 32, "lr": 0.1, "diverged": 0}}}
    stat = {"mean": 0.9, "std": 0.01}
    metrics = {"standard": {"final_test_acc": stat, "best_test_acc": stat,
                            "final_train_loss": stat, "final_test_loss": stat,
                            "epochs_to_target": {"mean": 1.0, "std": 0.0, "reached": 1}}}
    for kind, data in (("metrics", metrics), ("runs", details)):
        path = layout.report(kind, "suc")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data))
    tex = latex.render_table(layout, "suc", "label=tab:suc", "paper.md:1").inline
    caption = re.search(r"\\caption\{(.*)\}", tex).group(1)
    assert "\u201cOnes\u201d" in caption and '"' not in caption


def test_the_dvc_reference_has_a_year():
    bib = (ROOT / "paper" / "paper.bib").read_text(encoding="utf-8")
    entries = {m.group(1): m.group(2) for m in re.finditer(r"@\w+\{(\w+),(.*?)\n\}", bib, re.S)}
    dvc = [body for body in entries.values() if "zenodo.3677553" in body]
    assert len(dvc) == 1 and re.search(r"year\s*=\s*\{\d{4}\}", dvc[0])
    for key in entries:  # every reference is cited with its date, none prints "n.d."
        assert re.search(r"year\s*=\s*\{\d{4}\}", entries[key]), key


# Digits paper.md may hold outside placeholders, code, maths, labels and citations: names
# and notation, not results (a result is always a placeholder).
NOTATION = ("Proposition 1", "LeNet-5", "8×8", "top-1", "float32", "freegrad 1.0.1",
            "Logistic / 1", "derivative 1", "(100 minus", "95 %")


def test_the_paper_types_no_number_date_or_tracker_reference():
    text = (ROOT / "paper" / "paper.md").read_text(encoding="utf-8")
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    front, body = text.removeprefix("---\n").split("\n---\n", 1)
    assert re.search(r"^date: \{\{\s*pipeline\.results_date\s*\}\}$", front, flags=re.M)
    assert not re.search(r"\bissues?\b|\btracker\b|#\d", body, flags=re.I)
    for pattern in (r"```.*?```", r"\{\{[^}]*\}\}", r"`[^`]*`", r"\$[^$]*\$",
                    r"\\(?:ref|label)\{[^}]*\}", r"\[@[^\]]*\]|@\w+", r"\]\([^)]*\)(\{[^}]*\})?"):
        body = re.sub(pattern, " ", body, flags=re.S)
    for name in NOTATION:
        body = body.replace(name, " ")
    assert re.findall(r"\S*\d\S*", body) == []
