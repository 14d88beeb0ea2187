"""The ``report`` stage: Markdown and CSV tables from the DVC metrics.

    python -m experiments.analysis.report

For every experiment in params.yaml with a metrics file, writes
``reports/tables/<name>.md`` (one row per configuration, mean ± std over seeds, and a
provenance column; the cells are ``experiments.analysis.tables.experiment_table``, which the
paper renders as LaTeX) and ``<name>.csv`` (mean and std as separate numeric columns).
The numbers come from the DVC metrics ``reports/metrics/<name>.json``; the rule names,
settings and provenance from ``reports/runs/<name>.json`` (both written by
``train@<name>``).  An experiment with ``published`` numbers (params.yaml) gets a second
table in its Markdown, our top-1 error beside them, and their columns in its CSV.  No wall
times: the tables are DVC outputs and must repeat byte for byte, so seconds per epoch stay
in ``reports/timings/`` and MLflow.
"""

from __future__ import annotations

import json
import sys

import pandas as pd

from experiments import config
from experiments.analysis import tables
from experiments.results import files, paths


def main() -> int:
    params = config.load(import_modules=False)
    layout, written = paths.LAYOUT, 0
    for name in params["experiments"]:
        mpath = layout.report("metrics", name)
        if not mpath.is_file():
            print(f"report: no {layout.rel(mpath)}; run `dvc repro train@{name}`",
                  file=sys.stderr)
            continue
        metrics = json.loads(mpath.read_text())
        details = json.loads(layout.report("runs", name).read_text())
        header, rows = tables.experiment_table(metrics, details)
        text, numeric = tables.markdown(header, rows, tables.caption(details)), \
            tables.numeric_rows(metrics, details)
        if details.get("published"):  # our numbers beside the published ones
            text += "\n" + tables.markdown(*tables.published_table(metrics, details),
                                           tables.published_caption(details))
            extra = tables.published_numeric(metrics, details)
            numeric = [row | extra.get(row["config"], {}) for row in numeric]
        files.write_text(layout.table(name, "md"), text)
        files.write_text(layout.table(name, "csv"),
                      pd.DataFrame(numeric).to_csv(index=False, lineterminator="\n"))
        print(f"report: wrote reports/tables/{name}.md and .csv")
        written += 1
    if written == 0:
        print("error: no metrics found in reports/metrics/", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
