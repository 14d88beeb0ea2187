"""Tables and claims as LaTeX, from the JSON the stages write; the one LaTeX escaper.

``{{table: <experiment> | label=tab:x}}`` renders the cells of
``experiments.analysis.tables.experiment_table`` (the ones ``reports/tables/<experiment>.md``
shows, less its Markdown-only columns: epochs to target, seeds, provenance) from
``reports/metrics/<experiment>.json`` and ``reports/runs/<experiment>.json``: every table the
same columns (configuration, forward / backward, the axes its rows vary, test accuracy
final and best, train and test loss) in the one type size (``\gentablesize``), at the
text width, its first two columns wrapping.  Options: ``label``, ``caption`` (words put
before the generated caption), ``place`` (``body``, ``appendix``; default: the appendix for
a table of more than ``LONG_ROWS`` rows), ``rows`` (``configurations``, or ``published``:
the rows the published numbers name, beside them; ``published_table``).
``{{claims: reports/claims.json}}`` renders ``claims_summary_lines`` (in the text) and
``claims_pair_lines`` (every compared row: long, so in the appendix) of
``experiments.analysis.claims_tables``.
A table bound for the appendix is a ``Table``'s ``deferred`` part (a longtable, which
may run over pages); ``paper.document`` sets them where ``{{appendix: tables}}`` stands.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass

from experiments.analysis import claims_tables, tables
from experiments.results import paths
from paper import BuildError

LONG_ROWS = 12  # more rows (configurations) than this: the table goes to the appendix
OPTIONS = ("label", "caption", "place", "rows")
PLACES = ("body", "appendix")
# what a table's rows are: each configuration's metrics, or our top-1 error beside the
# published one (an experiment with ``published`` numbers in params.yaml)
ROWS = ("configurations", "published")
# experiment_table's columns the paper leaves to reports/tables/<experiment>.md
MARKDOWN_ONLY = ("Epochs to *", "Seeds", "Provenance")


@dataclass
class Table:
    """What a directive becomes: LaTeX in place (``inline``) and for the appendix
    (``deferred``), with the label of the deferred table."""
    inline: str = ""
    deferred: str = ""
    label: str = ""


def quotes(s: str) -> str:
    """Straight quotes outside `code` as opening and closing ones ("Ones" -> “Ones”, 'x' ->
    ‘x’): with TeX ligatures a straight " prints as a closing quote on both sides."""
    parts = re.split(r"(`[^`]*`)", s)
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r'"([^"]*)"', "\u201c\\1\u201d", parts[i])
        parts[i] = re.sub(r"(?<!\w)'([^']*)'(?!\w)", "\u2018\\1\u2019", parts[i])
    return "".join(parts)


def _special(s: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                 ("#", r"\#"), ("$", r"\$"), ("{", r"\{"), ("}", r"\}")):
        s = s.replace(a, b)
    return s


MATH = re.compile(r"(\$[^$\s](?:[^$]*[^$\s])?\$)")  # $...$, as pandoc reads inline maths


def escape(s) -> str:
    """Text for LaTeX: special characters escaped, quotes paired, `code` as \\texttt, ± and
    the power of ten of a number past 10^4 (1.18×10⁹) in math; $...$ (a claim's
    formula) kept as the maths it is."""
    out = []
    for i, part in enumerate(MATH.split(str(s))):
        if i % 2:
            out.append(part)
            continue
        part = _special(quotes(part))
        part = re.sub(r"`([^`]*)`", r"\\texttt{\1}", part)
        part = tables.powers(part, "\\ensuremath{{\\times10^{{{}}}}}")
        out.append(part.replace(tables.PM, r"\ensuremath{\pm}"))
    return "".join(out)


def breakable(tex: str) -> str:
    """Escaped text that may break after an underscore (configuration and rule names)."""
    return tex.replace(r"\_", r"\_\allowbreak{}")


def number_cell(text: str) -> str:
    """A numeric cell: on one line, ± with the spacing of a binary operator."""
    return escape(text).replace(r" \ensuremath{\pm} ", r"\ensuremath{\:\pm\:}").replace(" ", "~")


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


def table_options(opts: str, where: str) -> dict:
    """The ``| key=value`` options of a table directive, checked."""
    options = {}
    for part in filter(None, (p.strip() for p in opts.split("|"))):
        k, _, v = (x.strip() for x in part.partition("="))
        if k in options or not v:
            raise BuildError(f"{where}: table option {part!r}: "
                             + ("given twice" if k in options else "has no value")
                             + "; write each as `| key=value` once")
        options[k] = v
    unknown = [k for k in options if k not in OPTIONS]
    if unknown:
        raise BuildError(f"{where}: unknown table option {', '.join(map(repr, unknown))}; "
                         f"a table takes {', '.join(OPTIONS)} (every table has the same "
                         "columns)")
    if options.get("place", "body") not in PLACES:
        raise BuildError(f"{where}: place={options['place']!r}; it is one of "
                         + ", ".join(PLACES))
    if options.get("rows", ROWS[0]) not in ROWS:
        raise BuildError(f"{where}: rows={options['rows']!r}; it is one of " + ", ".join(ROWS))
    return options


def _paper_columns(header: list[str]) -> list[int]:
    return [i for i, h in enumerate(header)
            if not any(fnmatch.fnmatchcase(h, m) for m in MARKDOWN_ONLY)]


def experiment_inputs(layout: paths.Layout, experiment: str) -> list:
    return [layout.report("metrics", experiment), layout.report("runs", experiment)]


def table_label(experiment: str, options: dict) -> str:
    """A table's label: its ``label`` option, else ``tab:<experiment>[_published]``."""
    published = options.get("rows") == "published"
    return options.get("label", f"tab:{experiment}" + ("_published" if published else ""))


def _deferred(options: dict, rows: int) -> bool:
    return options.get("place", "appendix" if rows > LONG_ROWS else "body") == "appendix"


def _merge_diverged(cells: list[str]) -> list[str]:
    """Adjacent equal "diverged (k/n seeds)" cells as one cell spanning them."""
    out, i = [], 0
    while i < len(cells):
        j = i
        if cells[i].startswith("diverged ("):
            while j + 1 < len(cells) and cells[j + 1] == cells[i]:
                j += 1
        out.append(number_cell(cells[i]) if j == i else
                   rf"\multicolumn{{{j - i + 1}}}{{c}}{{\textit{{{escape(cells[i])}}}}}")
        i = j + 1
    return out


def _name_cell(name: str, rule: str) -> str:
    """A configuration's name in type (breakable; a note after it, "(diverged: ...)", in
    roman), its forward / backward on the lines below, indented."""
    base, sep, rest = name.partition(" (")
    return (r"\texttt{" + breakable(escape(base)) + "}" + (f" ({escape(rest)}" if sep else "")
            + r"\par\leftskip=1em " + escape(rule))


def _long(spec: str, caption: str, label: str, head: str, n: int, rows: list[str],
          size: str = r"\gentablesize") -> str:
    """A table that may run over pages (the appendix): xltabular at the text width, its type
    set by ``size``."""
    return "\n".join([
        "{" + size, r"\begin{xltabular}{\linewidth}{" + spec + "}",
        r"\caption{" + caption + r"}\label{" + label + r"}\\",
        r"\toprule", head, r"\midrule", r"\endfirsthead",
        rf"\multicolumn{{{n}}}{{@{{}}l}}{{\textit{{Table~\ref{{{label}}}, continued}}}}\\",
        r"\toprule", head, r"\midrule", r"\endhead", r"\bottomrule", r"\endfoot",
        *rows, r"\end{xltabular}}", ""])


def render_table(layout: paths.Layout, experiment: str, opts: str, where: str) -> Table:
    """An experiment's table as LaTeX: in place, or (long) for the appendix."""
    options = table_options(opts, where)
    mpath, rpath = (require(layout, p, where, f"written by `train@{experiment}`")
                    for p in experiment_inputs(layout, experiment))
    details = json.loads(rpath.read_text(encoding="utf-8"))
    metrics = json.loads(mpath.read_text(encoding="utf-8"))
    published = options.get("rows") == "published"
    if published and not details.get("published"):
        raise BuildError(f"{where}: rows=published, but experiments.{experiment} has no "
                         "`published` numbers in params.yaml")
    header, rows = (tables.published_table if published else tables.experiment_table)(
        metrics, details)
    cols = _paper_columns(header)
    label = table_label(experiment, options)
    heads = [r"\begin{tabular}[b]{@{}l@{}}\textbf{" + escape(header[cols[0]]) + r"}\\"
             r"\hspace*{1em}" + escape(header[cols[1]].lower()) + r"\end{tabular}"]
    for c in cols[2:]:  # a header as wide as its numbers (a spanning "diverged" aside)
        width = max([len(r[c]) for r in rows if not r[c].startswith("diverged (")]
                    + [max(map(len, header[c].split()))])
        heads.append(_head(header[c], max(width, 8)))
    spec = "@{}L" + "c" * (len(cols) - 2) + "@{}"  # L: template.tex, ragged, the width left
    head = " & ".join(heads) + r" \\"
    lines = []
    for i, r in enumerate(rows):
        if i:
            lines.append(r"\addlinespace[2pt]")
        lines.append(" & ".join([_name_cell(r[cols[0]], r[cols[1]]),
                                 *_merge_diverged([r[c] for c in cols[2:]])]) + r" \\")
    generated = tables.published_caption(details) if published else tables.caption(details)
    cap = escape(" ".join(filter(None, (options.get("caption", ""), generated))))
    if _deferred(options, len(rows)):
        return Table(deferred=_long(spec, cap, label, head, len(cols) - 1, lines),
                     label=label)
    body = [r"\begin{table}[htbp]", r"\gentablesize", r"\centering",
            r"\caption{" + cap + "}", r"\label{" + label + "}",
            r"\begin{tabularx}{\linewidth}{" + spec + "}", r"\toprule", head, r"\midrule",
            *lines, r"\bottomrule", r"\end{tabularx}", r"\end{table}"]
    return Table(inline="\n".join(body))


def _bold_row(cells: list[str]) -> str:
    return " & ".join(r"\textbf{" + escape(c) + "}" for c in cells) + r" \\"


def _head(text: str, width: int, align: str = "c") -> str:
    """A bold header cell wrapped to ``width`` characters (at least its longest word)."""
    return (r"\begin{tabular}[b]{@{}" + align + "@{}}"
            + r"\\".join(r"\textbf{" + escape(x) + "}" for x in _wrap(text, max(width, 4)))
            + r"\end{tabular}")


def evidence(experiments: list[str], labels: list[str], known: set[str] = frozenset()
             ) -> list[str]:
    """The labels of the tables and figures (``tab:<exp>``, ``fig:<exp>``, ``fig:<exp>_...``)
    of ``experiments`` among ``labels`` (the paper's, in its order), tables first; a label
    goes to the experiment, of these and ``known``, with the longest matching name
    (``fig:cnn_fashion_jamming`` is cnn_fashion's, not cnn's)."""
    def owner(label: str) -> str | None:
        name = label.split(":", 1)[1]
        found = [e for e in names if name == e or name.startswith(e + "_")]
        return max(found, key=len, default=None)
    names = set(experiments) | set(known)
    mine = [lab for lab in labels if lab.startswith(("tab:", "fig:"))
            and owner(lab) in experiments]
    return sorted(mine, key=lambda lab: not lab.startswith("tab:"))  # stable: paper order


def _refs(found: list[str]) -> str:
    tabs = [r"\ref{" + x + "}" for x in found if x.startswith("tab:")]
    figs = [r"\ref{" + x + "}" for x in found if x.startswith("fig:")]
    parts = ([("Table " if len(tabs) == 1 else "Tables ") + ", ".join(tabs)] if tabs else []) + (
        [("Figure " if len(figs) == 1 else "Figures ") + ", ".join(figs)] if figs else [])
    return "; ".join(parts) or "none in this paper"


def _claims_summary(items: list[dict], rel: str, labels: list[str]) -> list[str]:
    """Per claim: the study's words, our reading and the evidence on lines of their own,
    then its verdicts in each reading."""
    header, claims = claims_tables.claims_summary_lines(items)
    known = {c["experiment"] for c in items if c["kind"] != "summary"}
    out = [r"\begin{table}[htbp]", r"\gentablesize", r"\centering",
           r"\caption{The study's claims, in its words (from its abstract) and as our "
           r"configurations test them, with the verdicts of the \texttt{claims} stage "
           r"(generated from " + escape(rel) + r"), each row read at the paper's settings "
           r"and tuned (each arm at the learning rate its search chose on the validation "
           r"split). S / N / I: rows supported, not supported, inconclusive; worst diff.: "
           r"the lowest difference of the claim's rows, every row in Table "
           r"\ref{tab:claim_rows}.}",
           r"\label{tab:claims}",
           r"\begin{tabularx}{\linewidth}{@{}X c c l@{}}", r"\toprule",
           " & ".join([_head("Claim; reading", 40, "l"), _head(header[1], 10),
                       _head(header[2], 11), _head(header[3], 12, "l")]) + r" \\",
           r"\midrule"]
    wide = r"\multicolumn{4}{@{}>{\raggedright\arraybackslash}p{\linewidth}@{}}{"
    for i, c in enumerate(claims):
        if i:
            out.append(r"\addlinespace")
        where = f" ({c['experiment']}; {c['rows']} rows)" if c["rows"] else ""
        found = evidence([e.strip() for e in c["experiment"].split(",") if e.strip()], labels,
                         known)
        out += [wide + r"\textit{" + escape(c["id"]) + "}" + escape(where)
                + ": the study: \u201c" + escape(c["study"]) + "\u201d" + r"} \\",
                wide + r"\quad \textit{Tested}: " + escape(c["claim"]) + r"} \\",
                wide + r"\quad \textit{Evidence}: " + (_refs(found) if c["rows"] else
                                                        "no configuration tests it")
                + r"} \\"]
        if not c["lines"]:
            out.append(r"\quad no configuration testing it was run & & & \textbf{"
                       r"inconclusive} \\")
        for line in c["lines"]:
            out.append(r"\quad " + " & ".join(escape(x) for x in line[:-1])
                       + r" & \textbf{" + escape(line[-1]) + r"} \\")
    return out + [r"\bottomrule", r"\end{tabularx}", r"\end{table}", ""]


def _claims_pairs(items: list[dict]) -> Table:
    """Every compared row, by claim and experiment: a line per reading, the configuration
    on the first, its reference on the second."""
    header, groups = claims_tables.claims_pair_lines(items)
    cells = [line for blocks in groups.values() for b in blocks for line in b["lines"]]
    widths = [max([len(r[i]) for r in cells] + [8]) for i in range(len(header))]
    head = " & ".join([r"\textbf{" + escape(header[0]) + "}"]
                      + [_head(h, w, "l" if i in (1, len(header) - 1) else "c")
                         for i, (h, w) in enumerate(zip(header, widths, strict=True)) if i]
                      ) + r" \\"
    rows: list[str] = []
    for claim, blocks in groups.items():
        for block in blocks:
            if rows:
                rows.append(r"\addlinespace")
            rows.append(rf"\multicolumn{{{len(header)}}}{{@{{}}l}}{{"
                        + r"\textit{Claim} \texttt{" + escape(claim)
                        + r"}, \textit{experiment} \texttt{" + escape(block["experiment"])
                        + r"}} \\")
            for i, line in enumerate(block["lines"]):
                if i and line[1] == "paper":  # a new row: a little air
                    rows.append(r"\addlinespace[2pt]")
                rows.append(" & ".join([breakable(escape(line[0])), escape(line[1]),
                                        *(number_cell(x) for x in line[2:6]),
                                        escape(line[6]), escape(line[7])]) + r" \\")
    caption = (r"Every compared row, by claim and experiment: the configuration and (below "
               r"it) its reference, read at the paper's settings (\textit{paper}: both at "
               r"their grid's learning rate) and \textit{tuned} (each at the rate its search "
               r"chose on the validation split); learning rate (configuration / reference "
               r"where they differ), final test accuracy (\%, mean \ensuremath{\pm} std over "
               r"seeds, a diverged seed at chance) of each, and their difference in points "
               r"with its 95\,\% confidence interval; the seeds of each arm, paired by seed "
               r"(the arms share initialisation and data order) or not (Welch).")
    label = "tab:claim_rows"
    # its columns a little closer than the others' (the type the same): the names fit
    table = _long("@{}L l c c c c c l@{}", caption, label, head, len(header), rows,
                  size=r"\gentablesize\setlength{\tabcolsep}{2.5pt}")
    if _deferred({}, len(cells) // 2):  # two lines per compared row
        return Table(deferred=table, label=label)
    return Table(inline=table)


def render_claims(layout: paths.Layout, rel: str, where: str,
                  labels: tuple[str, ...] | list[str] = ()) -> Table:
    """The claims stage's verdicts: a summary per claim (in place), its evidence among
    ``labels`` (the paper's table and figure labels), then every compared row (long: for
    the appendix)."""
    path = require(layout, layout.file(rel), where, "the verdicts of the `claims` stage")
    items = json.loads(path.read_text(encoding="utf-8"))
    pairs = _claims_pairs(items)
    summary = "\n".join(_claims_summary(items, rel, [*labels, "tab:claim_rows"]))
    return Table(inline=summary + "\n" + pairs.inline, deferred=pairs.deferred,
                 label=pairs.label)


def appendix(deferred: list[Table]) -> str:
    """The appendix's tables, after a line naming them."""
    if not deferred:
        return "*No table is long enough to be set apart from the text.*"
    refs = [rf"\ref{{{t.label}}}" for t in deferred]
    words = (f"Table {refs[0]} is" if len(refs) == 1 else
             "Tables " + ", ".join(refs[:-1]) + f" and {refs[-1]} are")
    return raw(words + " set here, too long for the text.\\par\n"
               + "\n".join(t.deferred for t in deferred))


def raw(tex: str) -> str:
    """``tex`` fenced as raw LaTeX for pandoc ("" stays "")."""
    return "```{=latex}\n" + tex + "\n```" if tex else ""
