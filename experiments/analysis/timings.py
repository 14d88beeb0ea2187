"""Print the wall time and device of each train stage's last run, from ``reports/timings/``.

``python -m experiments.analysis.timings`` prints a Markdown table (README, "Results").  The stage
time is the last process's: a stage resumed from its run cache (docs/faults.md) counts only
the runs it trained after the restart, while its runs' epochs (the last column) count all."""

from __future__ import annotations

import json
import sys

from experiments.results import paths


def rows(layout: paths.Layout = paths.LAYOUT) -> list[dict]:
    """Per train stage: its device, threads per run, runs timed, the stage's wall minutes and
    its runs' epoch minutes, summed."""
    out = []
    for path in sorted(layout.timings.glob("*.json")):
        record = json.loads(path.read_text())
        runs = [run for config in record["configs"].values() for run in config["runs"].values()]
        out.append({"experiment": record["experiment"],
                    "stage": f"train@{record['experiment']}", "device": record["device"],
                    "threads": record["torch_threads"], "runs": len(runs),
                    "stage_min": record["stage_seconds"] / 60,
                    "epoch_min": sum(sum(r["epoch_seconds"]) for r in runs) / 60})
    return out


def table(rows: list[dict]) -> str:
    lines = ["| stage | device | threads per run | runs timed (not diverged) | stage wall (min) | "
             "runs' epochs, summed (min) |", "|---|---|---|---|---|---|"]
    lines += [f"| `{r['stage']}` | {r['device']} | {r['threads']} | {r['runs']} | "
              f"{r['stage_min']:.1f} | {r['epoch_min']:.1f} |" for r in rows]
    if len(rows) > 1:  # the totals the README quotes in hours
        t = totals(rows)
        lines.append(f"| all stages | {', '.join(t['devices'])} | | {t['runs']} | "
                     f"{t['stage_min']:.1f} | {t['epoch_min']:.1f} |")
    return "\n".join(lines)


def totals(rows: list[dict]) -> dict:
    """Over ``rows``: runs, stage and epoch minutes, summed; the devices; and the core-hours
    (each run's epoch time times the threads it used)."""
    return {"runs": sum(r["runs"] for r in rows),
            "stage_min": sum(r["stage_min"] for r in rows),
            "epoch_min": sum(r["epoch_min"] for r in rows),
            "devices": sorted({r["device"] for r in rows}),
            "core_hours": sum(r["epoch_min"] * r["threads"] for r in rows) / 60}


if __name__ == "__main__":
    sys.stdout.write(table(rows()) + "\n")
