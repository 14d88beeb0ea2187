"""The paper: built by the smoke pipeline's last stage, from generated inputs only."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from experiments.results import paths
from paper import BuildError
from paper import placeholders as build
from tests.conftest import paper_toolchain_problem

ROOT = paths.ROOT

SECTIONS = ["Summary", "Statement of need", "The library", "The reproduction",
            "Single-unit classifier", "MLP on DIGITS", "LeNet-5 on MNIST", "Gradient jamming",
            "Binary units", "Beyond the activation: layer feedback rules",
            "The study's claims, checked", "Conclusion",
            "Where our results differ from the study's, and why", "Compute",
            "What differs from the study's method, and why", "How to reproduce",
            "Appendix: the long tables", "References"]


def _text(pdf: Path) -> str:
    out = subprocess.run(["pdftotext", "-enc", "UTF-8", str(pdf), "-"], capture_output=True,
                         text=True, check=True).stdout
    return re.sub(r"\s+", " ", out.replace("’", "'"))


def _run_build(root: Path, *args):
    return subprocess.run([sys.executable, "-m", "paper.build", "--root", str(root), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)


# ---------------------------------------------------------------- without the pipeline

VALUES = {"pipeline.profile": "smoke", "pipeline.not_run.lenet": ["triangular"],
          "metrics.lenet.standard.final_test_acc.mean": 0.98765,
          "metrics.lenet.standard.final_test_acc.std": 0.0012,
          "claims.lenet_constant.diff_mean": -0.0042, "runs.lenet.n_seeds": 3,
          "params.claims.tolerance": 0.01}
NUMBERS = {"sources": {"metrics.lenet": "reports/metrics/lenet.json"}, "values": VALUES}


@pytest.mark.parametrize("placeholder, text", [
    ("{{metrics.lenet.standard.final_test_acc.mean | pct}}", "98.8%"),
    ("{{metrics.lenet.standard.final_test_acc.mean | pct:2}}", "98.77%"),
    ("{{metrics.lenet.standard.final_test_acc | pm_pct:2}}", "98.77 ± 0.12%"),
    ("{{claims.lenet_constant.diff_mean | pp}}", "-0.42"),
    ("{{params.claims.tolerance | pts}}", "1"),
    ("{{runs.lenet.n_seeds}}", "3"),
    ("{{ pipeline.profile | code }}", "`smoke`"),
    ("{{metrics.lenet.triangular.final_test_acc | pm_pct:2}}", "not run (profile smoke)"),
])
def test_placeholders(placeholder, text):
    assert build.substitute(f"a {placeholder} b", NUMBERS, "paper.md") == f"a {text} b"


@pytest.mark.parametrize("key, words", [
    ("metrics.lenet.nosuch.final_test_acc.mean", ["reports/metrics/lenet.json", "read by"]),
    ("metrics.resnet.standard.final_test_acc.mean",
     ["reports/metrics/resnet.json", "not found", "dvc repro train@resnet"]),
    ("claims.lenet_constant.diff", ["reports/claims.json", "close keys: claims.lenet_constant"]),
    ("typo.x", ["no generated file"]),
])
def test_unknown_key_names_key_line_and_file(key, words):
    with pytest.raises(BuildError) as err:
        build.substitute("first line\n{{" + key + "}}", NUMBERS, "paper/paper.md")
    msg = str(err.value)
    assert f"paper/paper.md:2: unknown number `{key}`" in msg
    for w in words:
        assert w in msg


def test_bad_format_is_an_error():
    with pytest.raises(BuildError, match="unknown format"):
        build.substitute("{{runs.lenet.n_seeds | percent}}", NUMBERS, "paper.md")


def test_the_probe_compiles_the_papers_template():
    """The toolchain probe is real: it compiles paper/probe.md with template.tex.  In CI,
    where `make paper-tools` has installed the packages, a failing probe fails the test."""
    problem = paper_toolchain_problem()
    if problem and not os.environ.get("CI"):
        pytest.skip(problem)
    assert problem is None


def test_a_broken_toolchain_is_named_with_its_install_line():
    """Not root (or no apt-get): `make pdf` stops with the probe's error and one apt-get line
    naming every package of paper/apt-packages.txt."""
    packages = subprocess.run([str(ROOT / "paper/toolchain.sh"), "packages"], capture_output=True,
                              text=True, check=True).stdout.split()
    assert {"texlive-xetex", "texlive-fonts-recommended", "poppler-utils"} <= set(packages)
    # As root the probe would install; run it as an unprivileged user instead.
    as_user = [] if os.getuid() != 0 else ["setpriv", "--reuid=65534", "--regid=65534",
                                           "--clear-groups"]
    if as_user and shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot try the unprivileged path")
    # That user may not enter the checkout's parent folders (a CI clone in a mode-700
    # folder): it runs a copy of the Makefile and paper/ in a folder it can read.
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp) / "repo"
        shutil.copytree(ROOT / "paper", where / "paper")
        shutil.copy2(ROOT / "Makefile", where / "Makefile")
        for folder in (Path(tmp), where, *where.rglob("*")):
            if folder.is_dir():
                folder.chmod(0o755)
        proc = subprocess.run([*as_user, "make", "-s", "-o", "install", "pdf"], cwd=where,
                              capture_output=True, text=True, timeout=120, check=False,
                              env={**os.environ, "XELATEX": "no-such-xelatex", "HOME": "/tmp"})
    assert proc.returncode != 0
    assert "no-such-xelatex not found" in proc.stderr
    assert f"sudo apt-get install --no-install-recommends {' '.join(packages)}" in proc.stderr


# ---------------------------------------------------------------- from the smoke pipeline

@pytest.fixture(scope="module")
def built(request):
    problem = paper_toolchain_problem()
    if problem:  # skip before the smoke pipeline runs for nothing
        pytest.skip(problem)
    smoke_workspace = request.getfixturevalue("smoke_workspace")
    assert smoke_workspace["paper"]
    repo = smoke_workspace["repo"]
    out = smoke_workspace["first"].stdout
    assert "Running stage 'numbers'" in out and "Running stage 'paper'" in out, out
    numbers = yaml.safe_load((repo / "paper/generated/numbers.yaml").read_text())
    return {"repo": repo, "pdf": repo / "paper" / "paper.pdf", "numbers": numbers,
            "env": smoke_workspace["env"]}


def test_pdf_has_the_sections_and_generated_numbers(built):
    pdf = built["pdf"]
    assert pdf.read_bytes().startswith(b"%PDF")
    text = _text(pdf)
    for title in SECTIONS:
        assert title in text, title
    values = built["numbers"]["values"]
    for key, fmt in [("metrics.suc.standard.final_test_acc", "pm_pct:2"),
                     ("metrics.lenet.constant.final_test_acc", "pm_pct:2"),
                     ("totals.n_runs", None), ("claims.count", None)]:
        expected = build.format_value(key, fmt, values)
        assert expected in text, (key, expected)
    assert "profile smoke" in text
    assert "Troiano" in text and "10.1016/j.neucom.2025.131178" in text
    assert "??" not in text  # no broken reference


def test_paper_stage_deps_are_what_the_paper_uses(built):
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["paper"]
    listed = _run_build(built["repo"], "--inputs")
    assert listed.returncode == 0, listed.stderr
    code = {f"paper/{p.name}" for p in (ROOT / "paper").glob("*.py") if p.name != "numbers.py"}
    used = {*code, "experiments/analysis/tables.py", "experiments/analysis/claims_tables.py",
            "experiments/analysis/verdicts.py",
            "experiments/results/paths.py",
            "paper/paper.md", "paper/paper.bib", "paper/template.tex", *listed.stdout.split()}
    deps = set(stage["deps"])
    assert deps == used, (f"dvc.yaml stage `paper`: add {sorted(used - deps)}, "
                          f"remove {sorted(deps - used)}")
    assert list(yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"])[-1] == "paper"


def test_repro_with_nothing_changed_keeps_the_paper(built):
    proc = subprocess.run(["dvc", "status", "paper"], cwd=built["repo"], env=built["env"],
                          capture_output=True, text=True, timeout=120, check=True)
    assert "changed" not in proc.stdout, proc.stdout


@pytest.fixture()
def copy(built, tmp_path):
    """What the build reads, copied, so that inputs can be broken without harm."""
    for rel in ("paper", "reports", "dvc.yaml", "params.yaml"):
        src = built["repo"] / rel
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, tmp_path / rel)
    (tmp_path / "paper" / "paper.pdf").unlink()
    return tmp_path


def test_same_inputs_give_the_same_pdf(built, copy):
    first = _run_build(copy, "--out", str(copy / "a.pdf"))
    assert first.returncode == 0, first.stderr
    second = _run_build(copy, "--out", str(copy / "b.pdf"))
    assert second.returncode == 0, second.stderr
    a = (copy / "a.pdf").read_bytes()
    assert a == (copy / "b.pdf").read_bytes()
    assert a == built["pdf"].read_bytes()  # and wherever the repository is


@pytest.mark.parametrize("rel", ["paper/generated/numbers.yaml", "reports/runs/lenet.json",
                                 "reports/figures/cnn_jamming.pdf", "reports/claims.json"])
def test_missing_generated_input_fails_naming_it(copy, rel):
    (copy / rel).unlink()
    proc = _run_build(copy)
    assert proc.returncode == 1
    assert rel in proc.stderr, proc.stderr
    assert not (copy / "paper" / "paper.pdf").exists()


def test_unknown_number_fails_the_build(copy):
    md = copy / "paper" / "paper.md"
    md.write_text(md.read_text() + "\n{{metrics.lenet.standard.final_tst_acc.mean | pct}}\n")
    proc = _run_build(copy)
    assert proc.returncode == 1
    assert "unknown number `metrics.lenet.standard.final_tst_acc.mean`" in proc.stderr
    assert "reports/metrics/lenet.json" in proc.stderr
    assert "close keys: metrics.lenet.standard.final_test_acc.mean" in proc.stderr
