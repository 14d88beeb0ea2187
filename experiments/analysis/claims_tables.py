"""The claims stage's tables, from ``reports/claims.json``: cells (text) rendered as Markdown
by the ``claims`` stage and as LaTeX by the paper (``paper.latex``).

* ``claims_summary(rows)`` / ``claims_rows(rows)`` - one row per claim, and every compared
  row grouped by claim, each read at the paper's settings and tuned (``interval``: a
  difference with its 95 % CI);
* ``claims_summary_lines`` / ``claims_pair_lines`` - the same in lines, narrow enough for a
  page (the paper).
"""

from __future__ import annotations

from experiments.analysis.tables import num, pm
from experiments.analysis.verdicts import READINGS, VERDICTS

READING_NAMES = {"paper": "at the paper's settings", "tuned": "tuned"}


def interval(reading: dict | None) -> str:
    """``diff [low, high]`` in points (signed), or "-" without a reading."""
    if reading is None:
        return "-"
    d = num(reading["diff"], 100, signed=True)
    if reading["low"] is None:
        return f"{d} (no interval)"
    low, high = (num(reading[k], 100, signed=True) for k in ("low", "high"))
    return f"{d} [{low}, {high}]"


def _counts(summary: dict | None) -> list[str]:
    """A claim's S / N / I counts, worst difference and verdict in one reading."""
    if summary is None or not summary["rows"]:
        return ["-", "-", summary["verdict"] if summary else "-"]
    return [" / ".join(str(summary["counts"][v]) for v in VERDICTS),
            num(summary["worst_diff"], 100, signed=True), summary["verdict"]]


def claims_summary(items: list[dict]) -> tuple[list[str], list[list[str]]]:
    """One row per claim: words, experiments, rows, and per reading its counts per
    verdict, worst difference and verdict."""
    header = ["Claim", "Experiments", "Rows"] + [
        f"{h}, {READING_NAMES[w]}" for w in READINGS
        for h in ("S / N / I", "Worst diff. (pts)", "Verdict")]
    rows = [[c["claim"], c["experiment"], str(c["rows"]),
             *(x for w in READINGS for x in _counts(c[w]))]
            for c in items if c["kind"] == "summary"]
    return header, rows


def _lr(reading: dict) -> str:
    """The reading's learning rate, "configuration / reference" where they differ ("" for an
    aggregate, whose rows may differ)."""
    if "config_lr" not in reading:
        return ""
    lrs = dict.fromkeys((reading["config_lr"], reading["reference_lr"]))
    return " / ".join(f"{x:g}" for x in lrs)


def _reading_cells(r: dict | None) -> list[str]:
    """[lr, configuration (%), reference (%), diff [CI], seeds, verdict] of one reading."""
    if r is None:
        return ["-"] * 6
    return [_lr(r), pm(r["config_mean"], r["config_std"], 100),
            pm(r["reference_mean"], r["reference_std"], 100), interval(r),
            " / ".join(map(str, r["n"])) + (" paired" if r["pairing"] == "paired by seed"
                                            else " Welch"), r["verdict"]]


def claims_rows(items: list[dict]) -> tuple[list[str], dict[str, list[list[str]]]]:
    """Every row (and aggregate), grouped by claim id: (header, {claim: rows}); each read
    at the paper's settings and tuned."""
    header = ["Row", "Reference"] + [
        f"{h}, {READING_NAMES[w]}" for w in READINGS
        for h in ("LR", "Configuration (%)", "Reference (%)", "Diff. [95 % CI] (pts)",
                  "Seeds", "Verdict")]
    groups: dict = {c["claim_id"]: [] for c in items if c["kind"] == "summary"}
    for c in items:
        if c["kind"] != "summary":
            same = "".join(f" (= `{t['config']}`)" for t in c["coincides_with"])
            groups[c["claim_id"]].append([f"`{c['id']}`{same}", c["reference"],
                                          *(x for w in READINGS for x in _reading_cells(c[w]))])
    return header, groups


def claims_summary_lines(items: list[dict]) -> tuple[list[str], list[dict]]:
    """The claims summary in lines, narrow enough for a page: per claim its id, our reading
    (``claim``), the study's words, experiments and rows, then ``lines``: [reading,
    S / N / I, worst difference, verdict] (none when no row was run)."""
    header = ["Reading", "S / N / I", "Worst diff. (pts)", "Verdict"]
    out = []
    for c in items:
        if c["kind"] == "summary":
            lines = [[READING_NAMES[w], *_counts(c[w])] for w in READINGS if c[w]["rows"]]
            out.append({"id": c["claim_id"], "claim": c["claim"], "study": c["study"],
                        "experiment": c["experiment"], "rows": c["rows"], "lines": lines})
    return header, out


def claims_pair_lines(items: list[dict]) -> tuple[list[str], dict[str, list[dict]]]:
    """Every row in lines, narrow enough for a page, grouped by claim id and within a claim
    by experiment: ``{claim: [{"experiment": e, "lines": [...]}]}``, a line per reading
    [configuration, reading, LR, configuration (%), reference (%), diff. [CI], seeds,
    verdict]:
    the configuration on the first line, "vs <reference>" on the second, the
    configurations that ran the very same runs ("= <config>") on a line of their own."""
    header = ["Row", "Reading", "LR", "Config. (%)", "Reference (%)",
              "Diff. [95 % CI] (pts)", "Seeds", "Verdict"]
    groups: dict = {c["claim_id"]: [] for c in items if c["kind"] == "summary"}
    for c in items:
        if c["kind"] == "summary":
            continue
        names = [f"`{c['config']}`", f"vs `{c['reference']}`",
                 *(f"= `{t['config']}`" for t in c["coincides_with"])]
        lines = []
        for i, w in enumerate(w for w in READINGS if c[w]):
            cells = _reading_cells(c[w])
            paired = c[w]["pairing"] == "paired by seed"  # paired: both arms the same seeds
            seeds = f"{c[w]['n'][0]} paired" if paired else cells[4]
            lines.append([names[i] if i < len(names) else "", w, *cells[:4], seeds, cells[5]])
        lines += [[n, *[""] * (len(header) - 1)] for n in names[len(lines):]]
        block = groups[c["claim_id"]]
        if not block or block[-1]["experiment"] != c["experiment"]:
            block.append({"experiment": c["experiment"], "lines": []})
        block[-1]["lines"] += lines
    return header, groups
