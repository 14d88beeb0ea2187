"""The two readings of a claims row, from ``reports/runs/<experiment>.json``.

A row compares a configuration with its reference (the configuration its grid's
``baseline`` names), seed by seed, twice:

* ``paper`` - both at the learning rate of their grid (the study's settings);
* ``tuned`` - each at the rate its learning-rate search chose on the validation split
  (``tuning.arms.<config>.tuned_config`` of the runs file: ``<config>_tuned``, or the
  configuration itself where the search chose its own rate); None where the experiment
  has no search.

A seed that diverged counts as a failed run at the configuration's chance accuracy (the
commonest test label's share), never dropped.  ``at_chance`` counts, per arm, the seeds that
ran to the end and finished no better than chance (a network that learned nothing).
"""

from __future__ import annotations

import statistics

from experiments.analysis import intervals
from experiments.analysis.verdicts import verdict
from experiments.results.records import DIGITS


def _r(x):
    return None if x is None else round(x, DIGITS)


def _diverged(run: dict) -> bool:
    return "diverged_at_epoch" in run


def seed_values(record: dict, metric: str) -> dict[int, float]:
    """``{seed: metric}`` of one configuration's runs; a diverged seed at chance."""
    chance = record["chance_accuracy"]
    return {int(k.removeprefix("seed_")): chance if _diverged(run) else run[metric]
            for k, run in record["runs"].items()}


def at_chance(record: dict, metric: str) -> int:
    """Seeds that ran to the end (not diverged) with ``metric`` at most chance accuracy."""
    return sum(1 for run in record["runs"].values()
               if not _diverged(run) and run[metric] <= record["chance_accuracy"])


def _spread(values) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def judged(config: dict[int, float], reference: dict[int, float], settings: dict) -> dict:
    """The difference ``config − reference`` of per-seed values, its interval and verdict."""
    d = intervals.difference(config, reference)
    reference_mean = statistics.fmean(reference.values())
    low, high = _r(d.low), _r(d.high)
    return {"seeds": sorted(config) if d.paired else [sorted(config), sorted(reference)],
            "n": list(d.n), "pairing": "paired by seed" if d.paired else "Welch",
            "config_mean": _r(statistics.fmean(config.values())),
            "config_std": _r(_spread(list(config.values()))),
            "reference_mean": _r(reference_mean),
            "reference_std": _r(_spread(list(reference.values()))),
            "diff": _r(d.mean), "low": low, "high": high,
            "verdict": verdict(low, high, settings["delta"], reference_mean,
                               settings.get("min_baseline", 0.0))}


def reading(details: dict, config: str, reference: str, settings: dict) -> dict:
    configs, metric = details["configs"], settings["metric"]
    c, r = configs[config], configs[reference]
    return {"config": config, "reference": reference, "config_lr": c["lr"],
            "reference_lr": r["lr"], "diverged": [c["diverged"], r["diverged"]],
            "at_chance": [at_chance(c, metric), at_chance(r, metric)],
            **judged(seed_values(c, metric), seed_values(r, metric), settings)}


def tuned_config(details: dict, cname: str) -> str | None:
    """The configuration holding ``cname``'s tuned final runs, or None (no search)."""
    arm = details.get("tuning", {}).get("arms", {}).get(cname)
    return None if arm is None else arm["tuned_config"]


def readings(details: dict, config: str, reference: str, settings: dict) -> dict:
    """Both readings of (config, reference)."""
    tc, tr = tuned_config(details, config), tuned_config(details, reference)
    return {"paper": reading(details, config, reference, settings),
            "tuned": reading(details, tc, tr, settings) if tc and tr else None}


def aggregated(details: dict, pairs: list[tuple[str, str]], which: str, settings: dict
               ) -> dict | None:
    """One reading over several (config, reference) pairs (the BNN's input sizes d): per
    seed the mean over the pairs, then judged as one row."""
    names = [(c, r) if which == "paper" else (tuned_config(details, c), tuned_config(details, r))
             for c, r in pairs]
    if any(c is None or r is None for c, r in names):
        return None
    metric, configs = settings["metric"], details["configs"]

    def per_seed(i: int) -> dict[int, float]:
        values = [seed_values(configs[pair[i]], metric) for pair in names]
        return {s: statistics.fmean(v[s] for v in values) for s in values[0]}

    return {"config": [c for c, _ in names], "reference": [r for _, r in names],
            **judged(per_seed(0), per_seed(1), settings)}


def same_runs(details: dict, a: str, b: str) -> bool:
    """Whether configurations ``a`` and ``b`` ran identical runs (every metric of every
    seed equal): one reading under two names."""
    return details["configs"][a]["runs"] == details["configs"][b]["runs"]
