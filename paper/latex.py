"""Tables and claims as LaTeX, from the JSON the stages write; the one LaTeX escaper.

``{{table: <experiment> | columns=A;B | label=tab:x}}`` renders the cells of
``experiments.analysis.tables.experiment_table`` (the ones ``reports/tables/<experiment>.md``
shows) from ``reports/metrics/<experiment>.json`` and ``reports/runs/<experiment>.json``;
columns are header names or globs (``Epochs to *``: the header carries a parameter).
``{{claims: reports/claims.json}}`` renders ``experiments.analysis.tables.claims_summary_lines``
and ``claims_pair_lines`` of the claims stage's verdicts: each row against its baseline
and against "our control", narrow enough for the text width.
"""

from __future__ import annotations

import fnmatch
import json
import re

from experiments.analysis import tables
from experiments.results import paths
from paper import BuildError


def quotes(s: str) -> str:
    """Straight quotes outside `code` as opening and closing ones ("Ones" -> “Ones”, 'x' ->
    ‘x’): with TeX ligatures a straight " prints as a closing quote on both sides."""
    parts = re.split(r"(`[^`]*`)", s)
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r'"([^"]*)"', "\u201c\\1\u201d", parts[i])
        parts[i] = re.sub(r"(?<!\w)'([^']*)'(?!\w)", "\u2018\\1\u2019", parts[i])
    return "".join(parts)


def escape(s) -> str:
    """Text for LaTeX: special characters escaped, quotes paired, `code` as \\texttt, ± in
    math."""
    s = quotes(str(s))
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                 ("#", r"\#"), ("$", r"\$"), ("{", r"\{"), ("}", r"\}")):
        s = s.replace(a, b)
    s = re.sub(r"`([^`]*)`", r"\\texttt{\1}", s)
    return s.replace(tables.PM, r"\ensuremath{\pm}")


def require(layout: paths.Layout, path, where: str, what: str):
    if not path.is_file():
        raise BuildError(f"{where}: missing generated file {layout.rel(path)} ({what}); "
                         "run `dvc repro` to write it")
    return path


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def _options(opts: str) -> dict:
    options = {}
    for part in filter(None, (p.strip() for p in opts.split("|"))):
        k, _, v = part.partition("=")
        options[k.strip()] = v.strip()
    return options


def _columns(header: list[str], wanted: str | None, where: str, what: str) -> list[int]:
    if wanted is None:
        return list(range(len(header)))
    cols = []
    for name in (n.strip() for n in wanted.split(";")):  # names or globs ("Epochs to *")
        match = [i for i, h in enumerate(header) if fnmatch.fnmatchcase(h, name)]
        if not match:
            raise BuildError(f"{where}: {what} has no column {name!r}; it has: "
                             + "; ".join(header))
        cols.append(match[0])
    return cols


def experiment_inputs(layout: paths.Layout, experiment: str) -> list:
    return [layout.report("metrics", experiment), layout.report("runs", experiment)]


def render_table(layout: paths.Layout, experiment: str, opts: str, where: str) -> str:
    """An experiment's table as LaTeX: natural column widths, headers wrapped to the width
    of their column, shrunk to the text width only if still too wide."""
    mpath, rpath = (require(layout, p, where, f"written by `train@{experiment}`")
                    for p in experiment_inputs(layout, experiment))
    details = json.loads(rpath.read_text(encoding="utf-8"))
    header, rows = tables.experiment_table(json.loads(mpath.read_text(encoding="utf-8")),
                                           details)
    options = _options(opts)
    cols = _columns(header, options.get("columns"), where, f"the table of {experiment}")
    heads = []
    for c in cols:
        width = max([len(r[c]) for r in rows] + [max(map(len, header[c].split()))])
        heads.append(r"\begin{tabular}[b]{@{}" + ("l" if c == cols[0] else "c") + "@{}}"
                     + r"\\".join(r"\textbf{" + escape(x) + "}"
                                  for x in _wrap(header[c], max(width, 8)))
                     + r"\end{tabular}")
    cap = " ".join(filter(None, (options.get("caption", ""), tables.caption(details))))
    body = [r"\begin{table}[htbp]", r"\gentablesize", r"\centering",
            r"\caption{" + escape(cap) + "}",
            r"\label{" + options.get("label", f"tab:{experiment}") + "}",
            r"\begin{fitwidth}", r"\begin{tabular}{@{}l" + "c" * (len(cols) - 1) + "@{}}",
            r"\toprule", " & ".join(heads) + r" \\", r"\midrule"]
    for r in rows:
        body.append(" & ".join(escape(r[c]).replace(" ", "~") if c != cols[0]
                               else escape(r[c]) for c in cols) + r" \\")
    body += [r"\bottomrule", r"\end{tabular}", r"\end{fitwidth}", r"\end{table}"]
    return "```{=latex}\n" + "\n".join(body) + "\n```"


def _bold_row(cells: list[str]) -> str:
    return " & ".join(r"\textbf{" + escape(c) + "}" for c in cells) + r" \\"


def _head(text: str, width: int, align: str = "c") -> str:
    """A bold header cell wrapped to ``width`` characters (at least its longest word)."""
    return (r"\begin{tabular}[b]{@{}" + align + "@{}}"
            + r"\\".join(r"\textbf{" + escape(x) + "}" for x in _wrap(text, max(width, 4)))
            + r"\end{tabular}")


def _claims_summary(items: list[dict], rel: str) -> list[str]:
    """Per claim: its words on a line of their own, then its verdicts in each reading."""
    header, claims = tables.claims_summary_lines(items)
    out = [r"\begin{table}[htbp]", r"\gentablesize", r"\centering",
           r"\caption{The study's claims and the verdicts of the \texttt{claims} stage "
           r"(generated from " + escape(rel) + r"), each row read at the paper's settings "
           r"and tuned (each arm at the learning rate its search chose on the validation "
           r"split). S / N / I: rows supported, not supported, inconclusive; worst diff.: "
           r"the lowest difference of the claim's rows.}", r"\label{tab:claims}",
           r"\begin{tabularx}{\linewidth}{@{}X c c l@{}}", r"\toprule",
           " & ".join([_head("Claim; reading", 40, "l"), _head(header[1], 10),
                       _head(header[2], 11), _head(header[3], 12, "l")]) + r" \\",
           r"\midrule"]
    for i, c in enumerate(claims):
        if i:
            out.append(r"\addlinespace")
        where = f" ({c['experiment']}; {c['rows']} rows)" if c["rows"] else ""
        out.append(r"\multicolumn{4}{@{}>{\raggedright\arraybackslash}p{\linewidth}@{}}{"
                   r"\textit{" + escape(c["id"]) + "}" + escape(where) + ": "
                   + escape(c["claim"]) + r"} \\")
        if not c["lines"]:
            out.append(r"\quad no configuration testing it was run & & & \textbf{"
                       r"inconclusive} \\")
        for line in c["lines"]:
            out.append(r"\quad " + " & ".join(escape(x) for x in line[:-1])
                       + r" & \textbf{" + escape(line[-1]) + r"} \\")
    return out + [r"\bottomrule", r"\end{tabularx}", r"\end{table}", ""]


def _claims_pairs(items: list[dict]) -> list[str]:
    """Every compared row: one line per reading (the row id on the first)."""
    header, groups = tables.claims_pair_lines(items)
    cells = [r for rows in groups.values() for r in rows]
    widths = [max([len(r[i]) for r in cells] + [8]) for i in range(len(header))]
    head = " & ".join(_head(h, w, "l" if i in (0, 1, 6) else "c")
                      for i, (h, w) in enumerate(zip(header, widths, strict=True))) + r" \\"
    out = [r"{\gentablesize", r"\setlength{\LTpre}{4pt}\setlength{\LTpost}{4pt}",
           r"\begin{longtable}{@{}l l c c c c l@{}}",
           r"\caption{Every compared row (row id: experiment and configuration), read at the "
           r"paper's settings and tuned: learning rate (configuration / reference where they "
           r"differ), final test accuracy (\%, mean \ensuremath{\pm} std over seeds, a "
           r"diverged seed at chance) of the configuration and of its reference, and their "
           r"difference in points with its 95\,\% confidence interval.}"
           r"\label{tab:claim_rows}\\",
           r"\toprule", head, r"\midrule", r"\endfirsthead", r"\toprule", head, r"\midrule",
           r"\endhead", r"\bottomrule", r"\endfoot"]
    for claim, rows in groups.items():
        if not rows:
            continue
        if out[-1] != r"\endfoot":
            out.append(r"\addlinespace")
        out.append(r"\multicolumn{7}{@{}l}{\textit{claim " + escape(claim) + r"}} \\")
        for r in rows:
            out.append(" & ".join(escape(x) for x in r) + r" \\")
    return out + [r"\end{longtable}}"]


def render_claims(layout: paths.Layout, rel: str, where: str) -> str:
    """The claims stage's verdicts: a summary per claim, then every compared pair."""
    path = require(layout, layout.file(rel), where, "the verdicts of the `claims` stage")
    items = json.loads(path.read_text(encoding="utf-8"))
    return ("```{=latex}\n" + "\n".join(_claims_summary(items, rel) + _claims_pairs(items))
            + "\n```")
