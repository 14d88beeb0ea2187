"""pandoc and xelatex: the expanded paper.md to a PDF, reproducibly.

SOURCE_DATE_EPOCH (default: the front matter's date at 00:00 UTC) fixes every date
xelatex writes, and the PDF /ID is a hash of the LaTeX and the included files (not of the
temporary file name xdvipdfmx would use): the same inputs give the same bytes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

from experiments.results import paths
from paper import NOT_COMMITTED, BuildError
from paper.document import expand
from paper.placeholders import load_numbers

TOOLS = {"pandoc": "pandoc", "xelatex": "texlive-xetex"}
INSTALL = "sudo apt-get install pandoc texlive-xetex"
SOURCES = ("paper/paper.md", "paper/paper.bib", "paper/template.tex")


def missing_tools() -> list[str]:
    return [t for t in TOOLS if shutil.which(t) is None]


def _epoch(text: str) -> int:
    if os.environ.get("SOURCE_DATE_EPOCH"):
        return int(os.environ["SOURCE_DATE_EPOCH"])
    front = text.split("\n---", 1)[0]
    meta = yaml.safe_load(front.removeprefix("---")) or {}
    date = meta.get("date")
    if date == NOT_COMMITTED:  # results not committed yet: a fixed epoch all the same
        return 0
    if not isinstance(date, dt.date):
        raise BuildError("paper/paper.md: front matter needs `date: YYYY-MM-DD` (or "
                         f"{NOT_COMMITTED!r}; it also fixes SOURCE_DATE_EPOCH), got "
                         f"{date!r}")
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


def _pandoc(layout: paths.Layout, tmp: Path, env: dict) -> None:
    proc = _run(["pandoc", str(tmp / "paper.md"), "--from", "markdown", "--to", "latex",
                 "--standalone", "--template", str(layout.file("paper/template.tex")),
                 "--citeproc", "--bibliography", str(layout.file("paper/paper.bib")),
                 "--metadata", "link-citations=true", "--resource-path", str(layout.root),
                 "--output", str(tmp / "paper.tex")], layout.root, env, "pandoc")
    warnings = [w for w in proc.stderr.splitlines() if "WARNING" in w]
    if warnings:
        raise BuildError("pandoc warnings (fix paper.md or paper.bib):\n" + "\n".join(warnings))


def _pin_pdf_id(layout: paths.Layout, tex: Path, inputs: list[str]) -> None:
    """The PDF /ID: xdvipdfmx would hash the (temporary) file name into it; derive it from
    what the PDF is made of instead, so the same inputs give the same bytes."""
    digest = hashlib.md5(tex.read_bytes())
    for rel in sorted(set(inputs)):
        digest.update(layout.file(rel).read_bytes())
    tex.write_text(f"\\special{{pdf:trailerid [<{digest.hexdigest()}> <{digest.hexdigest()}>]}}\n"
                   + tex.read_text(encoding="utf-8"), encoding="utf-8")


def _xelatex(layout: paths.Layout, tmp: Path, env: dict) -> None:
    # \includegraphics paths are relative to the repository root: run there, write
    # everything else to tmp.  Twice: page references and LastPage.
    for _ in range(2):
        _run(["xelatex", "-interaction=nonstopmode", "-halt-on-error",
              f"-output-directory={tmp}", str(tmp / "paper.tex")], layout.root, env, "xelatex")
    log = (tmp / "paper.log").read_text(encoding="utf-8", errors="replace")
    problems = sorted(set(re.findall(r"Missing character: There is no .*", log)))
    problems += re.findall(r"LaTeX Warning: (?:Reference|Citation) .* undefined.*", log)
    if problems:
        raise BuildError("xelatex: " + "\n".join(problems))


def build(layout: paths.Layout, out: Path, tex_out: Path | None = None) -> Path:
    missing = missing_tools()
    if missing:
        raise BuildError(f"missing {', '.join(missing)}; install with: {INSTALL}")
    for rel in SOURCES:
        if not layout.file(rel).is_file():
            raise BuildError(f"missing {rel}")
    text, inputs = expand(layout, load_numbers(layout))
    env = {**os.environ, "SOURCE_DATE_EPOCH": str(_epoch(text)), "FORCE_SOURCE_DATE": "1",
           "TZ": "UTC", "LC_ALL": "C.UTF-8"}
    with tempfile.TemporaryDirectory(prefix="freegrad-paper-") as tmp:
        tmp = Path(tmp)
        (tmp / "paper.md").write_text(text, encoding="utf-8")
        _pandoc(layout, tmp, env)
        _pin_pdf_id(layout, tmp / "paper.tex", inputs)
        _xelatex(layout, tmp, env)
        if tex_out:
            shutil.copyfile(tmp / "paper.tex", tex_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_name(f".{out.name}.part")
        shutil.copyfile(tmp / "paper.pdf", part)
        os.replace(part, out)
    return out
