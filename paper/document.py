"""paper.md expanded: sections kept or noted, directives rendered, figures checked.

``{{table: <experiment> | label=tab:x}}`` and ``{{claims: reports/claims.json}}`` become
LaTeX (``paper.latex``); a table too long for the text (or ``place=appendix``) is set where
``{{appendix: tables}}`` stands instead (a long table and no such line stop the build);
``![caption](reports/figures/<name>.pdf){width=...}`` needs the figure (a missing file
stops the build naming it); ``::: {.experiment name="<exp>"}`` ... ``:::`` is kept when
``experiments.<exp>`` is in params.yaml (its inputs are then required), otherwise replaced
by a one-line note saying it is not in the pipeline (or, when neither of its result files
``reports/{metrics,runs}/<exp>.json`` exists yet, that it has no results: the rest of the
paper builds while it trains); ``::: {.requires output="<path>"}``
does the same for a path some stage of dvc.yaml declares as an output.  Then every
``{{key | format}}`` is substituted (``paper.placeholders``).
"""

from __future__ import annotations

import re

import yaml

from experiments.results import paths
from paper import BuildError, latex
from paper.placeholders import substitute

TABLE = re.compile(r"^\{\{\s*table:\s*([^|}]+?)\s*((?:\|[^}]*)?)\}\}\s*$")
CLAIMS_DIRECTIVE = re.compile(r"^\{\{\s*claims:\s*([^|}]+?)\s*\}\}\s*$")
APPENDIX = re.compile(r"^\{\{\s*appendix:\s*tables\s*\}\}\s*$")
APPENDIX_MARK = "\0appendix\0"
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)[^)]*\)")
DIV_OPEN = re.compile(r"^:::+\s*\{\s*\.(experiment|requires)\s+(name|output)=\"([^\"]+)\"\s*\}\s*$")
DIV_CLOSE = re.compile(r"^:::+\s*$")
TABLE_LINE = re.compile(TABLE.pattern, re.M)
LABEL = re.compile(r"\\label\{([^}]+)\}")


def _declared_outputs(layout: paths.Layout) -> set[str]:
    dvc_yaml = layout.file("dvc.yaml")
    dvc = yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) if dvc_yaml.is_file() else {}
    outs = set()
    for stage in (dvc or {}).get("stages", {}).values():
        body = stage.get("do", stage)
        for kind in ("outs", "metrics", "plots"):
            for o in body.get(kind, []) or []:
                outs.add(next(iter(o)) if isinstance(o, dict) else str(o))
    return outs


def _no_results(layout: paths.Layout, name: str) -> str | None:
    """A note when an experiment has neither of its result files (not trained yet); None
    when it has one (a missing other one then stops the build, naming it)."""
    files = latex.experiment_inputs(layout, name)
    if any(p.is_file() for p in files):
        return None
    return (f"*No results yet for this experiment (`{name}`): "
            + " and ".join(f"`{layout.rel(p)}`" for p in files)
            + f" are not written (`dvc repro train@{name}` trains it).*")


def select_sections(text: str, numbers: dict, layout: paths.Layout, check: bool = True) -> str:
    experiments = set(numbers["values"].get("pipeline.experiments") or [])
    outputs = None
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        m = DIV_OPEN.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        kind, _, name = m.groups()
        j = i + 1
        while j < len(lines) and not DIV_CLOSE.match(lines[j]):
            j += 1
        if j == len(lines):
            raise BuildError(f"paper/paper.md:{i + 1}: `{lines[i]}` is never closed by `:::`")
        if kind == "experiment":
            keep = name in experiments
            note = (f"*This experiment (`{name}`) is not yet in the pipeline: params.yaml has no "
                    f"`experiments.{name}`, so there is nothing to report.*")
            missing = _no_results(layout, name) if keep and check else None
            if missing:  # declared but not trained yet: the rest of the paper still builds
                keep, note = False, missing
        else:
            if outputs is None:
                outputs = _declared_outputs(layout)
            keep = name in outputs or any(name.startswith(o.rstrip("/") + "/") for o in outputs)
            note = f"*Not yet in the pipeline: no stage of dvc.yaml writes `{name}`.*"
        block = lines[i + 1:j]
        if keep:
            out.extend(block)
        else:  # keep the heading, so the paper's structure shows what is still to come
            heads = [x for x in block if x.startswith("#")][:1]
            out.extend(heads + ["", note])
        i = j + 1
    return "\n".join(out)


def labels_in(text: str) -> list[str]:
    """The labels the paper sets, in the order it sets them: its tables' (``latex.table_label``:
    a ``label=`` option or the default) and its figures' ``\\label{...}``."""
    tables = []
    for m in TABLE_LINE.finditer(text):
        where = f"paper/paper.md:{text.count(chr(10), 0, m.start()) + 1}"
        options = latex.table_options(m.group(2), where)
        tables.append((m.start(), latex.table_label(m.group(1).strip(), options)))
    found = sorted(tables + [(m.start(), m.group(1)) for m in LABEL.finditer(text)])
    return list(dict.fromkeys(label for _, label in found))


def _directive(line: str, layout: paths.Layout, where: str, check: bool,
               labels: list[str]):
    """(``latex.Table`` or None, the generated files it reads) of a table or claims line;
    None if the line is no directive."""
    m = CLAIMS_DIRECTIVE.match(line)
    if m:
        rel = m.group(1).strip()
        return (latex.render_claims(layout, rel, where, labels) if check else None), [rel]
    m = TABLE.match(line)
    if m:
        exp = m.group(1).strip()
        inputs = [layout.rel(p) for p in latex.experiment_inputs(layout, exp)]
        return (latex.render_table(layout, exp, m.group(2), where) if check else None), inputs
    return None


def expand(layout: paths.Layout, numbers: dict, check: bool = True) -> tuple[str, list[str]]:
    """paper.md with sections selected, numbers substituted, tables inlined (the long ones
    in the appendix); and its inputs."""
    text = layout.paper_md.read_text(encoding="utf-8")
    # Comments are for authors; keep their lines (so line numbers hold), drop the text.
    text = re.sub(r"<!--.*?-->", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = select_sections(text, numbers, layout, check)
    labels = labels_in(text)
    inputs: list[str] = []
    out, deferred, appendix_at = [], [], None
    for lineno, line in enumerate(text.split("\n"), 1):
        where = f"paper/paper.md:{lineno}"
        if APPENDIX.match(line):
            if appendix_at is not None:
                raise BuildError(f"{where}: a second `{{{{appendix: tables}}}}` (the first is "
                                 f"on line {appendix_at})")
            appendix_at = lineno
            out.append(APPENDIX_MARK)
            continue
        directive = _directive(line, layout, where, check, labels)
        if directive is not None:
            table, reads = directive
            if table is not None:
                out.append(latex.raw(table.inline))
                if table.deferred:
                    if appendix_at is not None:
                        raise BuildError(f"{where}: a long table after the appendix "
                                         f"(line {appendix_at}): it could not be set there")
                    deferred.append(table)
            inputs += reads
            continue
        for img in IMAGE.findall(line):
            inputs.append(img)
            if check:
                latex.require(layout, layout.file(img), where, "a figure")
        out.append(line)
    if not check:
        return "", inputs
    if deferred and appendix_at is None:
        raise BuildError("paper/paper.md: " + ", ".join(t.label for t in deferred)
                         + f" (more than {latex.LONG_ROWS} rows, or place=appendix) go to the "
                         "appendix, and paper.md has no `{{appendix: tables}}` line")
    text = substitute("\n".join(out), numbers, "paper/paper.md")
    left = re.search(r"\{\{.*?\}\}", text)
    if left:
        raise BuildError(f"paper/paper.md: cannot read placeholder {left.group(0)!r}")
    return text.replace(APPENDIX_MARK, latex.appendix(deferred)), inputs
