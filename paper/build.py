"""Build paper/paper.pdf from paper/paper.md: the DVC stage ``paper`` (``make pdf``).

    python -m paper.build                 # paper/paper.pdf
    python -m paper.build --out x.pdf     # elsewhere
    python -m paper.build --tex x.tex     # also keep the LaTeX
    python -m paper.build --inputs        # list the generated files paper.md uses

paper.md is Markdown with JOSS front matter; ``paper.document`` expands it (sections,
placeholders, tables, claims, figures) and ``paper.compile`` runs pandoc (with
paper/template.tex, --citeproc, paper/paper.bib) and xelatex.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from experiments.results import paths
from paper import BuildError
from paper.compile import build
from paper.document import expand
from paper.placeholders import load_numbers


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", type=Path, default=paths.ROOT, help="repository root")
    ap.add_argument("--out", type=Path, help="the PDF (default: <root>/paper/paper.pdf)")
    ap.add_argument("--tex", type=Path, help="also write the generated LaTeX here")
    ap.add_argument("--inputs", action="store_true",
                    help="print the generated files paper.md uses, one a line, and exit")
    args = ap.parse_args(argv)
    layout = paths.Layout(args.root.resolve())
    try:
        if args.inputs:
            _, inputs = expand(layout, load_numbers(layout), check=False)
            print("\n".join([layout.rel(layout.numbers), *dict.fromkeys(inputs)]))
            return 0
        out = build(layout, (args.out or layout.paper_pdf).resolve(), args.tex)
    except BuildError as err:
        print(f"error: paper: {err}", file=sys.stderr)
        return 1
    print(f"paper: wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
