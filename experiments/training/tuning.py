"""The learning-rate search of a train stage: every arm of an experiment tuned alike, on a
validation split held out from its training set; the test set is never read.

params ``experiments.<name>.tuning``: ``lr`` (the grid, increasing), ``epochs`` and ``seeds``
(each candidate's budget: the same for every arm), ``validation`` (the last N training
examples, or that fraction of them: ``inputs.holdout``) and ``widen``.  Where an arm's best
rate is the lowest or highest it has tried, one more rate past that edge is tried (the grid's
geometric step), up to ``widen`` times per arm.

An arm's score at a rate is its final validation accuracy, the mean over the tuning seeds; a
diverged seed counts as a failed run at chance (the commonest validation label's share).  The
chosen rate has the best score; a tie goes to the smaller rate.

The search's runs are runs like any other (run cache, executor, MLflow experiment
``<name>-tuning``), named ``<config>@lr<rate>``.  The final runs at the chosen rates are the
configurations ``<config>_tuned`` (``tuned_experiment``), trained only where the chosen rate
differs from the configuration's own; else its own runs are also its tuned reading.
"""

from __future__ import annotations

import copy
import logging
import statistics
from collections.abc import Callable

from experiments.config import Experiment
from experiments.results.records import Run
from experiments.training import inputs

log = logging.getLogger("experiments.training")

SELECTION = ("the highest final validation accuracy, mean over the tuning seeds (a diverged "
             "seed at chance); a tie goes to the smaller rate")


def candidate(cname: str, lr: float) -> str:
    return f"{cname}@lr{lr:g}"


def tuned_name(cname: str) -> str:
    return f"{cname}_tuned"


def own_lr(experiment: Experiment, cname: str) -> float:
    return experiment.config(cname).get("lr", experiment.spec["lr"])


def search_experiment(experiment: Experiment, rates: dict[str, list[float]]) -> Experiment:
    """The runs of the search at ``rates`` (configuration -> rates to try), as an
    experiment of phase "tuning": the tuning budget's epochs and seeds, no diagnostics."""
    spec = copy.deepcopy(experiment.spec)
    tuning = spec["tuning"]
    spec.update(epochs=tuning["epochs"], seeds=list(tuning["seeds"]))
    spec.pop("diagnostics", None)
    spec["configs"] = {candidate(c, lr): {**spec["configs"][c], "lr": lr, "claims": []}
                       for c, lrs in rates.items() for lr in lrs}
    return Experiment(experiment.name, experiment.profile, spec, phase="tuning")


def _score(runs: list[Run], chance: float) -> float:
    return statistics.fmean(chance if r.diverged else r.metrics["final_test_acc"] for r in runs)


def _best(scores: dict[float, float]) -> float:
    return max(sorted(scores), key=lambda lr: scores[lr])  # max keeps the first: the smaller


def _step(grid: list[float]) -> float:
    """The grid's geometric step (10 for a one-rate grid)."""
    return (grid[-1] / grid[0]) ** (1 / (len(grid) - 1)) if len(grid) > 1 else 10.0


def _past_edge(tried: list[float], best: float, step: float) -> float | None:
    """The next rate past the edge ``best`` sits at, or None (an inner rate)."""
    if best == min(tried):
        return float(f"{best / step:.3g}")
    if best == max(tried):
        return float(f"{best * step:.3g}")
    return None


def search(experiment: Experiment, train: Callable[[Experiment], list[Run]], data: dict
           ) -> tuple[dict, list[Run]]:
    """(the record of the search, its runs): every configuration of ``experiment`` tried at
    the grid, widened where its best sits at an edge; ``train(exp)`` trains every run of an
    experiment; ``data``: the experiment's data (for each arm's chance level)."""
    tuning = experiment.spec["tuning"]
    grid, step = list(tuning["lr"]), _step(list(tuning["lr"]))
    pending = {c: list(grid) for c in experiment.spec["configs"]}
    tried: dict[str, dict[float, list[Run]]] = {c: {} for c in pending}
    searched = []
    for _ in range(tuning["widen"] + 1):
        runs = train(search_experiment(experiment, pending)) if pending else []
        searched += runs
        by_name = {candidate(c, lr): (c, lr) for c, lrs in pending.items() for lr in lrs}
        for run in runs:
            c, lr = by_name[run.config]
            tried[c].setdefault(lr, []).append(run)
        pending = {}
        for c in tried:
            scores = _scores(experiment, c, tried[c], data)
            nxt = _past_edge(list(scores), _best(scores), step)
            if nxt is not None and nxt not in tried[c]:
                pending[c] = [nxt]
    return _record(experiment, tried, data, grid), searched


def _scores(experiment, cname: str, by_lr: dict[float, list[Run]], data: dict) -> dict:
    chance = _chance(experiment, cname, data)
    return {lr: _score(runs, chance) for lr, runs in sorted(by_lr.items())}


def _chance(experiment: Experiment, cname: str, data: dict) -> float:
    probe = search_experiment(experiment, {cname: [own_lr(experiment, cname)]})
    first = next(iter(probe.spec["configs"]))
    return inputs.chance_accuracy(inputs.configuration_data(probe, data, first))


def _record(experiment: Experiment, tried: dict, data: dict, grid: list[float]) -> dict:
    """What ``reports/runs/<name>.json`` records of the search: the protocol, and per arm
    every candidate's validation accuracy and the chosen rate."""
    tuning, arms = experiment.spec["tuning"], {}
    for c, by_lr in tried.items():
        scores = _scores(experiment, c, by_lr, data)
        chosen = _best(scores)
        arms[c] = {"candidates": [
            {"lr": lr, "val_acc": round(scores[lr], 6),
             "seeds": {f"seed_{r.seed}": None if r.diverged else r.metrics["final_test_acc"]
                       for r in by_lr[lr]},
             "diverged": sum(r.diverged for r in by_lr[lr])} for lr in scores],
            "chance_accuracy": _chance(experiment, c, data), "chosen_lr": chosen,
            "own_lr": own_lr(experiment, c),
            "tuned_config": c if chosen == own_lr(experiment, c) else tuned_name(c)}
    probe = search_experiment(experiment, {c: [own_lr(experiment, c)] for c in tried})
    meta = inputs.configuration_data(probe, data, next(iter(probe.spec["configs"])))["meta"]
    return {"grid": grid, "widen": tuning["widen"], "epochs": tuning["epochs"],
            "seeds": list(tuning["seeds"]),
            "validation": {"examples": meta["test_n"], "of": meta["train_n"] + meta["test_n"],
                           "which": meta["evaluated_on"]},
            "selection": SELECTION, "arms": arms}


def tuned_experiment(experiment: Experiment, record: dict) -> Experiment:
    """``experiment`` with a configuration ``<config>_tuned`` at its chosen rate for every arm
    whose chosen rate is not its own (named in the record's ``tuned_config``)."""
    spec = copy.deepcopy(experiment.spec)
    for c, arm in record["arms"].items():
        if arm["tuned_config"] != c:
            cfg = spec["configs"][c]
            spec["configs"][arm["tuned_config"]] = {
                **cfg, "lr": arm["chosen_lr"], "claims": [], "tuned_from": c,
                "provenance": f"{cfg['provenance']}; lr chosen on the validation split"}
    return Experiment(experiment.name, experiment.profile, spec)
