"""Build paper/paper.pdf from paper/paper.md: the DVC stage ``paper`` (``make pdf``).

    python paper/build.py                 # paper/paper.pdf
    python paper/build.py --out x.pdf     # elsewhere
    python paper/build.py --tex x.tex     # also keep the LaTeX
    python paper/build.py --inputs        # list the generated files paper.md uses

paper.md is Markdown with JOSS front matter, plus four things this script expands
before pandoc (with paper/template.tex, --citeproc, paper/paper.bib) and xelatex run:

``{{key}}`` / ``{{key | format}}``
    a value of paper/generated/numbers.yaml (the DVC stage ``numbers``).  Formats:
    ``pct[:d]`` (0.9975 -> 99.75%, d decimals, default 1), ``pts[:d]`` (0.01 -> 1:
    a fraction in points, default 0 decimals), ``pp[:d]`` (signed
    difference in percentage points: +0.05), ``pm_pct[:d]`` (key of a {mean,std}
    pair without .mean: 99.75 ± 0.11%), ``pm[:d]``, ``f[:d]`` (fixed decimals,
    default 2), ``int``, ``list``, ``code`` (verbatim).  An unknown key stops the
    build naming the key, the line and the file that should hold it.
``{{table: reports/tables/<exp>.md | columns=A;B;C | label=tab:x}}``
    a table written by the ``report`` stage (its caption comes with it); columns are
    header names or globs (``Epochs to *``: the header carries a parameter).
``![caption](reports/figures/<name>.pdf){width=...}``
    a figure; a missing file stops the build naming it.
``::: {.experiment name="<exp>"}`` ... ``:::``
    a section kept when ``experiments.<exp>`` is in params.yaml (its inputs are then
    required); otherwise replaced by a one-line note saying it is not in the pipeline.
    ``::: {.requires output="<path>"}`` does the same for a path some stage of dvc.yaml
    declares as an output.

The PDF is reproducible: SOURCE_DATE_EPOCH (default: the front matter's date at
00:00 UTC) fixes every date xelatex writes, and the PDF /ID is a hash of the LaTeX
and the included files (not of the temporary file name xdvipdfmx would use).
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import fnmatch
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TOOLS = {"pandoc": "pandoc", "xelatex": "texlive-xetex"}
INSTALL = "sudo apt-get install pandoc texlive-xetex"

PLACEHOLDER = re.compile(r"\{\{\s*([^{}|]+?)\s*(?:\|\s*([^{}]+?)\s*)?\}\}")
TABLE = re.compile(r"^\{\{\s*table:\s*([^|}]+?)\s*((?:\|[^}]*)?)\}\}\s*$")
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)[^)]*\)")
DIV_OPEN = re.compile(r"^:::+\s*\{\s*\.(experiment|requires)\s+(name|output)=\"([^\"]+)\"\s*\}\s*$")
DIV_CLOSE = re.compile(r"^:::+\s*$")

SOURCES = {  # key prefix -> the file the numbers stage reads it from
    "metrics": ("reports/metrics/{}.json", "dvc repro train@{}"),
    "runs": ("reports/runs/{}.json", "dvc repro train@{}"),
    "claims": ("reports/claims.json", "dvc repro"),
}


class BuildError(RuntimeError):
    """The paper cannot be built as asked; the message says which input is at fault."""


# ---------------------------------------------------------------- numbers

def load_numbers(root: Path) -> dict:
    path = root / "paper" / "generated" / "numbers.yaml"
    if not path.is_file():
        raise BuildError("missing generated file paper/generated/numbers.yaml "
                         "(written by the DVC stage `numbers`: run `dvc repro numbers`)")
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(data.get("values"), dict):
        raise BuildError("paper/generated/numbers.yaml has no `values` mapping; "
                         "rerun `dvc repro numbers`")
    return data


def source_of(key: str, numbers: dict) -> str:
    """The file a key should come from, for error messages."""
    parts = key.split(".")
    kind = parts[0]
    if kind in SOURCES and (kind == "claims" or len(parts) > 1):
        template, how = SOURCES[kind]
        exp = parts[1] if len(parts) > 1 else "?"
        path = template.format(exp)
        exists = (numbers.get("sources") or {}).get(kind if kind == "claims" else f"{kind}.{exp}")
        state = "read by the numbers stage" if exists else "not found by the numbers stage"
        return f"{path} ({state}; `{how.format(exp)}` writes it)"
    known = numbers.get("sources") or {}
    if kind in known:
        return f"{known[kind]} (via the numbers stage)"
    kinds = set(SOURCES) | {k.split(".")[0] for k in known}
    return ("no generated file: keys start with " + ", ".join(sorted(kinds))
            + " (see paper/generated/numbers.yaml)")


def _digits(spec: str, default: int) -> int:
    return int(spec) if spec else default


def format_value(key: str, fmt: str | None, values: dict) -> str:
    """The text a placeholder becomes (also used by the tests)."""
    name, _, arg = (fmt or "").partition(":")
    name = name.strip()
    if name in ("pm", "pm_pct"):
        mean, std = values[f"{key}.mean"], values[f"{key}.std"]
        if mean is None:
            return "n/a"
        scale, unit = (100, "%") if name == "pm_pct" else (1, "")
        d = _digits(arg, 1 if name == "pm_pct" else 2)
        return f"{mean * scale:.{d}f} ± {std * scale:.{d}f}{unit}"
    value = values[key]
    if value is None:
        return "n/a"
    if name == "":
        if isinstance(value, float):
            return f"{value:g}"
        if isinstance(value, list):
            return ", ".join(map(str, value))
        return str(value)
    if name == "pct":
        return f"{value * 100:.{_digits(arg, 1)}f}%"
    if name == "pts":
        return f"{value * 100:.{_digits(arg, 0)}f}"
    if name == "pp":
        return f"{value * 100:+.{_digits(arg, 2)}f}"
    if name == "f":
        return f"{value:.{_digits(arg, 2)}f}"
    if name == "int":
        return f"{int(round(value)):d}"
    if name == "list":
        return ", ".join(map(str, value))
    if name == "code":
        return f"`{value}`"
    raise KeyError(f"unknown format {fmt!r} (pct, pts, pp, pm, pm_pct, f, int, list, code)")


def _needed_keys(key: str, fmt: str | None) -> list[str]:
    if fmt and fmt.split(":")[0].strip() in ("pm", "pm_pct"):
        return [f"{key}.mean", f"{key}.std"]
    return [key]


def not_run(key: str, values: dict) -> str | None:
    """The text for a key of a configuration the profile did not run, else None."""
    parts = key.split(".")
    if len(parts) < 3 or parts[0] not in ("metrics", "runs"):
        return None
    exp = parts[1]
    rest = key[len(f"{parts[0]}.{exp}."):].removeprefix("configs.")
    for cfg in values.get(f"pipeline.not_run.{exp}") or []:
        if rest.startswith(cfg + "."):
            return f"not run (profile {values.get('pipeline.profile')})"
    return None


def substitute(text: str, numbers: dict, where: str) -> str:
    values = numbers["values"]
    out = []
    for lineno, line in enumerate(text.split("\n"), 1):
        def repl(m, lineno=lineno):
            key, fmt = m.group(1).strip(), m.group(2)
            for k in _needed_keys(key, fmt):
                if k not in values and not_run(k, values):
                    return not_run(k, values)
                if k not in values:
                    close = difflib.get_close_matches(k, list(values), n=3, cutoff=0.75)
                    hint = f"; close keys: {', '.join(close)}" if close else ""
                    raise BuildError(f"{where}:{lineno}: unknown number `{k}`; it should come "
                                     f"from {source_of(k, numbers)}{hint}")
            try:
                return format_value(key, fmt, values)
            except (KeyError, TypeError, ValueError) as err:
                raise BuildError(f"{where}:{lineno}: cannot format `{key}` with "
                                 f"`{fmt}`: {err}") from err
        out.append(PLACEHOLDER.sub(repl, line))
    return "\n".join(out)


# ---------------------------------------------------------------- sections, tables, figures

def _declared_outputs(root: Path) -> set[str]:
    dvc = yaml.safe_load((root / "dvc.yaml").read_text(encoding="utf-8")) if \
        (root / "dvc.yaml").is_file() else {}
    outs = set()
    for stage in (dvc or {}).get("stages", {}).values():
        body = stage.get("do", stage)
        for kind in ("outs", "metrics", "plots"):
            for o in body.get(kind, []) or []:
                outs.add(next(iter(o)) if isinstance(o, dict) else str(o))
    return outs


def select_sections(text: str, numbers: dict, root: Path) -> str:
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
        else:
            if outputs is None:
                outputs = _declared_outputs(root)
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


def _require(root: Path, rel: str, where: str, what: str) -> Path:
    path = root / rel
    if not path.is_file():
        raise BuildError(f"{where}: missing generated file {rel} ({what}); "
                         "run `dvc repro` to write it")
    return path


def _tex(s: str) -> str:
    s = str(s)
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"),
                 ("#", r"\#"), ("$", r"\$"), ("{", r"\{"), ("}", r"\}")):
        s = s.replace(a, b)
    s = re.sub(r"`([^`]*)`", r"\\texttt{\1}", s)
    return s.replace("±", r"\ensuremath{\pm}")


def read_md_table(path: Path) -> tuple[str, list[str], list[list[str]]]:
    """(caption, header, rows) of a table written by experiments/report.py."""
    caption, header, rows = "", None, []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("<!--"):
            caption = line.removeprefix("<!--").removesuffix("-->").strip()
        elif line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if header is None:
                header = cells
            elif not all(set(c) <= set("-: ") for c in cells):
                rows.append(cells)
    if header is None:
        raise BuildError(f"{path}: no Markdown table in it")
    return caption, header, rows


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def render_table(root: Path, rel: str, opts: str, where: str) -> str:
    """A table of the report stage as LaTeX: natural column widths, headers wrapped to
    the width of their column, shrunk to the text width only if still too wide."""
    path = _require(root, rel, where, "a table of the `report` stage")
    caption, header, rows = read_md_table(path)
    options = {}
    for part in filter(None, (p.strip() for p in opts.split("|"))):
        k, _, v = part.partition("=")
        options[k.strip()] = v.strip()
    cols = list(range(len(header)))
    if "columns" in options:
        cols = []
        for name in options["columns"].split(";"):  # names or globs ("Epochs to *")
            name = name.strip()
            match = [i for i, h in enumerate(header) if fnmatch.fnmatchcase(h, name)]
            if not match:
                raise BuildError(f"{where}: {rel} has no column {name!r}; it has: "
                                 + "; ".join(header))
            cols.append(match[0])
    heads = []
    for c in cols:
        width = max([len(r[c]) for r in rows if c < len(r)] + [max(map(len, header[c].split()))])
        lines = _wrap(header[c], max(width, 8))
        heads.append(r"\begin{tabular}[b]{@{}" + ("l" if c == cols[0] else "c") + "@{}}"
                     + r"\\".join(r"\textbf{" + _tex(x) + "}" for x in lines)
                     + r"\end{tabular}")
    spec = r"@{}l" + "c" * (len(cols) - 1) + "@{}"
    label = options.get("label", f"tab:{Path(rel).stem}")
    lead = options.get("caption", "")
    body = [r"\begin{table}[htbp]", r"\gentablesize", r"\centering",
            r"\caption{" + _tex(" ".join(filter(None, (lead, caption)))) + "}",
            r"\label{" + label + "}",
            r"\begin{fitwidth}",
            r"\begin{tabular}{" + spec + "}", r"\toprule",
            " & ".join(heads) + r" \\", r"\midrule"]
    for r in rows:
        body.append(" & ".join(_tex(r[c]).replace(" ", "~") if c != cols[0] else _tex(r[c])
                               for c in cols) + r" \\")
    body += [r"\bottomrule", r"\end{tabular}", r"\end{fitwidth}", r"\end{table}"]
    return "```{=latex}\n" + "\n".join(body) + "\n```"


CLAIMS_DIRECTIVE = re.compile(r"^\{\{\s*claims:\s*([^|}]+?)\s*\}\}\s*$")


def _pct(v, signed=False) -> str:
    if v is None:
        return "n/a"
    return f"{v * 100:+.2f}" if signed else f"{v * 100:.2f}"


def render_claims(root: Path, rel: str, where: str) -> str:
    """The claims stage's verdicts: a summary per claim, then every compared pair."""
    import json

    path = _require(root, rel, where, "the verdicts of the `claims` stage")
    items = json.loads(path.read_text(encoding="utf-8"))
    summaries = [c for c in items if c.get("kind") == "summary"]
    rows = [c for c in items if c.get("kind") != "summary"]
    pm = r"\,\ensuremath{\pm}\,"
    HEAD = (r"\textbf{Row} & \textbf{Baseline} & \textbf{Configuration} & \textbf{Difference} & "
            r"\textbf{Seeds} & \textbf{Verdict} \\")
    out = [r"\begin{table}[htbp]", r"\gentablesize", r"\centering",
           r"\caption{The study's claims and the verdicts of the \texttt{claims} stage "
           r"(generated from " + _tex(rel) + r"). Rows: compared pairs; S / N / I: supported, "
           r"not supported, inconclusive; worst diff.: the lowest difference of its rows.}", r"\label{tab:claims}",
           r"\begin{tabularx}{\linewidth}{@{}>{\raggedright\arraybackslash}X l c c c l@{}}",
           r"\toprule", r"\textbf{Claim} & \textbf{Experiments} & \textbf{Rows} & "
           r"\textbf{S / N / I} & \textbf{Worst diff. (pts)} & \textbf{Verdict} \\", r"\midrule"]
    for c in summaries:
        n = c.get("counts", {})
        counts = " / ".join(str(n.get(k, 0)) for k in ("supported", "not supported",
                                                        "inconclusive"))
        out.append(f"{_tex(c['claim'])} & {_tex(c['experiment'])} & {c.get('rows', '')} & "
                   f"{counts} & {_pct(c.get('worst_diff'), True)} & "
                   rf"\textbf{{{_tex(c['verdict'])}}} \\")
    out += [r"\bottomrule", r"\end{tabularx}", r"\end{table}", ""]
    out += [r"{\gentablesize", r"\setlength{\LTpre}{4pt}\setlength{\LTpost}{4pt}",
            r"\begin{longtable}{@{}l c c c c l@{}}",
            r"\caption{Every compared pair (row id: experiment and configuration): final test "
            r"accuracy (\%, mean" + pm + r"std over seeds) of the true-derivative baseline and "
            r"of the configuration, and their difference in points.}\label{tab:claim_rows}\\",
            r"\toprule", HEAD, r"\midrule", r"\endfirsthead", r"\toprule", HEAD, r"\midrule",
            r"\endhead", r"\bottomrule", r"\endfoot"]
    last = None
    for c in rows:
        if c.get("claim_id") != last:
            last = c.get("claim_id")
            if out[-1] != r"\endfoot":
                out.append(r"\addlinespace")
            out.append(r"\multicolumn{6}{@{}l}{\textit{claim " + _tex(c.get("claim_id", ""))
                       + r"}} \\")
        out.append(" & ".join([
            r"\texttt{" + _tex(c["id"]) + "}",
            _pct(c["baseline_mean"]) + pm + _pct(c["baseline_std"]),
            _pct(c["config_mean"]) + pm + _pct(c["config_std"]),
            _pct(c["diff_mean"], True) + pm + _pct(c["diff_std"]),
            str(c.get("n_seeds", "")), _tex(c["verdict"])]) + r" \\")
    out += [r"\end{longtable}}"]
    return "```{=latex}\n" + "\n".join(out) + "\n```"


def expand(root: Path, numbers: dict, check: bool = True) -> tuple[str, list[str]]:
    """paper.md with sections selected, numbers substituted, tables inlined; and its inputs."""
    md_path = root / "paper" / "paper.md"
    text = md_path.read_text(encoding="utf-8")
    # Comments are for authors; keep their lines (so line numbers hold), drop the text.
    text = re.sub(r"<!--.*?-->", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = select_sections(text, numbers, root)
    inputs: list[str] = []
    out = []
    for lineno, line in enumerate(text.split("\n"), 1):
        m = CLAIMS_DIRECTIVE.match(line)
        if m:
            rel = m.group(1).strip()
            inputs.append(rel)
            if check:
                out.append(render_claims(root, rel, f"paper/paper.md:{lineno}"))
            continue
        m = TABLE.match(line)
        if m:
            rel = m.group(1).strip()
            inputs.append(rel)
            if check:
                out.append(render_table(root, rel, m.group(2), f"paper/paper.md:{lineno}"))
            continue
        for img in IMAGE.findall(line):
            inputs.append(img)
            if check:
                _require(root, img, f"paper/paper.md:{lineno}", "a figure")
        out.append(line)
    if not check:
        return "", inputs
    text = substitute("\n".join(out), numbers, "paper/paper.md")
    left = re.search(r"\{\{.*?\}\}", text)
    if left:
        raise BuildError(f"paper/paper.md: cannot read placeholder {left.group(0)!r}")
    return text, inputs


# ---------------------------------------------------------------- build

def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def _epoch(text: str) -> int:
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    front = text.split("\n---", 1)[0]
    meta = yaml.safe_load(front.removeprefix("---")) or {}
    date = meta.get("date")
    if not isinstance(date, dt.date):
        raise BuildError("paper/paper.md: front matter needs `date: YYYY-MM-DD` "
                         "(it also fixes SOURCE_DATE_EPOCH)")
    return int(dt.datetime(date.year, date.month, date.day, tzinfo=dt.timezone.utc).timestamp())


def _run(args, cwd, env, what):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    if proc.returncode != 0:
        text = proc.stdout + proc.stderr
        err = text.find("\n! ")  # a TeX error: show it, not the package list before it
        tail = text[err + 1:err + 1500] if err >= 0 else text[-3000:]
        raise BuildError(f"{what} failed ({proc.returncode}):\n{tail}")
    return proc


def build(root: Path, out: Path, tex_out: Path | None = None) -> Path:
    missing = missing_tools()
    if missing:
        raise BuildError(f"missing {', '.join(missing)}; install with: {INSTALL}")
    for rel in ("paper/paper.md", "paper/paper.bib", "paper/template.tex"):
        if not (root / rel).is_file():
            raise BuildError(f"missing {rel}")
    numbers = load_numbers(root)
    text, inputs = expand(root, numbers)
    epoch = _epoch(text)
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch), "FORCE_SOURCE_DATE": "1",
           "TZ": "UTC", "LC_ALL": "C.UTF-8"}
    with tempfile.TemporaryDirectory(prefix="freegrad-paper-") as tmp:
        tmp = Path(tmp)
        (tmp / "paper.md").write_text(text, encoding="utf-8")
        proc = _run(["pandoc", str(tmp / "paper.md"), "--from", "markdown", "--to", "latex",
                     "--standalone", "--template", str(root / "paper/template.tex"),
                     "--citeproc", "--bibliography", str(root / "paper/paper.bib"),
                     "--metadata", "link-citations=true", "--resource-path", str(root),
                     "--output", str(tmp / "paper.tex")], root, env, "pandoc")
        warnings = [w for w in proc.stderr.splitlines() if "WARNING" in w]
        if warnings:
            raise BuildError("pandoc warnings (fix paper.md or paper.bib):\n" + "\n".join(warnings))
        # The PDF /ID: xdvipdfmx would hash the (temporary) file name into it; derive it
        # from what the PDF is made of instead, so the same inputs give the same bytes.
        digest = hashlib.md5((tmp / "paper.tex").read_bytes())
        for rel in sorted(set(inputs)):
            digest.update((root / rel).read_bytes())
        tex = (tmp / "paper.tex").read_text(encoding="utf-8")
        (tmp / "paper.tex").write_text(
            f"\\special{{pdf:trailerid [<{digest.hexdigest()}> <{digest.hexdigest()}>]}}\n" + tex,
            encoding="utf-8")
        # \includegraphics paths are relative to the repository root: run there,
        # write everything else to tmp.  Twice: page references and LastPage.
        for _ in range(2):
            _run(["xelatex", "-interaction=nonstopmode", "-halt-on-error",
                  f"-output-directory={tmp}", str(tmp / "paper.tex")], root, env, "xelatex")
        log = (tmp / "paper.log").read_text(encoding="utf-8", errors="replace")
        problems = sorted(set(re.findall(r"Missing character: There is no .*", log)))
        problems += re.findall(r"LaTeX Warning: (?:Reference|Citation) .* undefined.*", log)
        if problems:
            raise BuildError("xelatex: " + "\n".join(problems))
        if tex_out:
            shutil.copyfile(tmp / "paper.tex", tex_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_name(f".{out.name}.part")
        shutil.copyfile(tmp / "paper.pdf", part)
        os.replace(part, out)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=ROOT, help="repository root")
    ap.add_argument("--out", type=Path, help="the PDF (default: <root>/paper/paper.pdf)")
    ap.add_argument("--tex", type=Path, help="also write the generated LaTeX here")
    ap.add_argument("--inputs", action="store_true",
                    help="print the generated files paper.md uses, one a line, and exit")
    args = ap.parse_args(argv)
    root = args.root.resolve()
    try:
        if args.inputs:
            _, inputs = expand(root, load_numbers(root), check=False)
            print("\n".join(["paper/generated/numbers.yaml", *dict.fromkeys(inputs)]))
            return 0
        out = build(root, (args.out or root / "paper" / "paper.pdf").resolve(), args.tex)
    except BuildError as err:
        print(f"error: paper: {err}", file=sys.stderr)
        return 1
    print(f"paper: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
