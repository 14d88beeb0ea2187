"""The ``train@<experiment>`` stage: every (configuration, seed) of one experiment.

    python -m experiments.train suc

Reads ``params.yaml`` (the active ``profile`` and ``experiments.<name>``),
trains each configuration for each seed with the backward rule it names, and
writes, atomically:

* ``reports/metrics/<name>.json`` - mean/std over seeds per configuration, numbers
  only (the DVC metrics, compact enough for ``dvc exp show``).
* ``reports/runs/<name>.json`` - settings, provenance and per-run metrics.
  Both are deterministic: two CPU runs give byte-identical files (no times).
* ``reports/curves/<name>.csv`` - per-epoch curves of every run (DVC plots).
* ``reports/diagnostics/<name>.csv`` - gradient-direction diagnostics (cosine, sign
  agreement, norm ratio per parameter tensor against the true gradient) every few steps,
  for the configurations and seeds ``diagnostics`` names; only a header when none.

These are the stage's DVC outputs.  It also writes ``reports/timings/<name>.json``: wall
time per epoch and of the stage, device and threads.  Those are machine dependent, so the
file is a side record, not a DVC output nor a dep of any stage (it would change
``dvc.lock`` on every run, and no table or paper number may quote it); git keeps it as the
record of the last run, and MLflow has the same times per run (``epoch_seconds``).

Each run is also an MLflow run (see ``experiments.tracking``).

The loop is generic: the experiment module supplies ``prepare``,
``build_model``, ``loss_fn`` and ``n_correct``, and optionally
``config_data(data, cfg)`` when configurations train on different data (the
binary units: one "Ones" set per input size).  A configuration may override
``batch_size`` and ``lr``; ``train_limit`` / ``test_limit`` keep the first N
examples (a deterministic subset, for the quick and smoke profiles).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io as _io
import logging
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from tqdm import tqdm

from experiments import data as data_mod
from experiments import io, paths, tracking
from experiments import params as params_mod

log = logging.getLogger("experiments.train")

CURVE_FIELDS = ["config", "seed", "epoch", "train_loss", "train_acc", "test_loss", "test_acc"]
RUN_METRICS = ["final_test_acc", "best_test_acc", "final_train_loss", "final_test_loss",
               "epochs_to_target"]
DIAG_FIELDS = ["config", "seed", "step", "parameter", "cosine", "sign_agreement",
               "norm_ratio"]
DIGITS = 6  # rounding of floats in the metrics file


class Diverged(RuntimeError):
    """The loss became NaN or infinite: the run stops (MLflow FAILED) and is reported."""

    def __init__(self, epoch: int, step: int, loss: float, rows: list[dict]):
        super().__init__(f"loss {loss} at epoch {epoch}, step {step}")
        self.epoch, self.step, self.loss, self.rows = epoch, step, loss, rows


def pick_device() -> torch.device:
    """CUDA, else MPS, else CPU; ``$FREEGRAD_DEVICE`` forces one."""
    if os.environ.get("FREEGRAD_DEVICE"):
        return torch.device(os.environ["FREEGRAD_DEVICE"])
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def is_true_derivative(cfg: dict) -> bool:
    backward = cfg.get("backward")
    return backward in params_mod.TRUE_DERIVATIVE or backward == f"d({cfg['forward']})"


def rule_context(cfg: dict, seed: int | None = None):
    """The freegrad rule block for ``cfg``; a no-op for the true derivative."""
    if is_true_derivative(cfg):
        return contextlib.nullcontext()
    import freegrad as fg

    kwargs = {"scope": cfg.get("scope", "activations"), "seed": seed}
    if cfg.get("rule_params"):
        kwargs["params"] = dict(cfg["rule_params"])
    return fg.use(cfg["backward"], **kwargs)


def setting(spec: dict, cfg: dict, key: str):
    """A configuration's own ``batch_size`` / ``lr`` if it sets one, else the experiment's."""
    return cfg.get(key, spec[key])


def make_optimizer(spec: dict, model: torch.nn.Module, lr: float | None = None
                   ) -> torch.optim.Optimizer:
    lr = spec["lr"] if lr is None else lr
    if spec["optimizer"] == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=spec["weight_decay"])
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=spec["momentum"],
                           weight_decay=spec["weight_decay"])


def configuration_data(module, data: dict, cfg: dict) -> dict:
    """What a configuration trains on: ``module.config_data(data, cfg)`` where the experiment
    defines one (bnn: one data set per input size), else ``data``."""
    return module.config_data(data, cfg) if hasattr(module, "config_data") else data


def limit(data: dict, spec: dict) -> dict:
    """The first ``train_limit`` / ``test_limit`` examples (all when unset)."""
    out = dict(data)
    for part in ("train", "test"):
        n = spec.get(f"{part}_limit")
        if n is not None and n < len(data[f"{part}_x"]):
            out[f"{part}_x"], out[f"{part}_y"] = data[f"{part}_x"][:n], data[f"{part}_y"][:n]
    out["meta"] = {**data["meta"], "train_n": len(out["train_x"]), "test_n": len(out["test_x"])}
    return out


def diagnosed(spec: dict, cfg: dict, cname: str, seed: int) -> bool:
    """Whether ``diagnostics`` asks for gradient-direction measurements of this run."""
    diag = spec.get("diagnostics")
    if not diag or is_true_derivative(cfg):
        return False
    return (cname in diag.get("configs", [cname])
            and seed in diag.get("seeds", spec["seeds"][:1]))


def make_diagnostics(spec: dict, cfg: dict, seed: int, model, log=None):
    """A ``freegrad.diagnostics.GradientDiagnostics`` comparing the rule with the truth."""
    from freegrad.diagnostics import GradientDiagnostics

    return GradientDiagnostics(model, cfg["backward"], dict(cfg["rule_params"]) or None,
                               cfg.get("scope", "activations"),
                               every=spec["diagnostics"]["every"], log=log, seed=seed)


@torch.no_grad()
def evaluate(module, model, x, y, batch_size: int = 4096) -> tuple[float, float]:
    model.eval()
    total_loss, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        out = model(x[i : i + batch_size])
        total_loss += float(module.loss_fn(out, y[i : i + batch_size])) * len(out)
        correct += module.n_correct(out, y[i : i + batch_size])
    return total_loss / len(x), correct / len(x)


def fit(module, spec: dict, cfg: dict, seed: int, data: dict, device, on_epoch=None,
        progress=None, diagnostics=None) -> list[dict]:
    """Train one (configuration, seed); return one row per epoch (epoch 0 = initial).

    ``diagnostics(model)``, if given, returns a ``GradientDiagnostics`` called before
    every optimiser step with the batch loss (it measures every ``every`` steps, against
    the true derivative: freegrad takes that inside ``fg.exact()``)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)  # batch order, on CPU for every device
    model = module.build_model(spec, cfg, data["meta"]).to(device)
    opt = make_optimizer(spec, model, setting(spec, cfg, "lr"))
    if spec.get("compile"):  # optional, off by default: see benchmarks/bench_epoch.py
        model = torch.compile(model)
    x, y = data["train_x"], data["train_y"]
    n, bs = len(x), setting(spec, cfg, "batch_size")
    diag = diagnostics(model) if diagnostics is not None else None
    step = 0

    train_loss, train_acc = evaluate(module, model, x, y)
    test_loss, test_acc = evaluate(module, model, data["test_x"], data["test_y"])
    rows = [dict(epoch=0, train_loss=train_loss, train_acc=train_acc, test_loss=test_loss,
                 test_acc=test_acc, seconds=0.0)]
    # The rule in force is bound when the forward runs: one block for the whole run.
    with rule_context(cfg, seed):
        for epoch in range(1, spec["epochs"] + 1):
            t0 = time.perf_counter()
            model.train()
            perm = torch.randperm(n, generator=gen).to(device)
            loss_sum, correct = 0.0, 0
            for i in range(0, n, bs):
                idx = perm[i : i + bs]
                xb, yb = x[idx], y[idx]
                if diag is not None:
                    diag(step, lambda xb=xb, yb=yb: module.loss_fn(model(xb), yb))
                step += 1
                out = model(xb)
                try:
                    loss = module.loss_fn(out, yb)
                except RuntimeError:  # e.g. binary_cross_entropy refuses a NaN input
                    if bool(torch.isfinite(out).all()):
                        raise
                    raise Diverged(epoch, step, float("nan"), rows) from None
                loss_value = float(loss.detach())
                if not math.isfinite(loss_value):  # stop before a NaN reaches the weights
                    raise Diverged(epoch, step, loss_value, rows)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += loss_value * len(idx)
                correct += module.n_correct(out.detach(), yb)
            test_loss, test_acc = evaluate(module, model, data["test_x"], data["test_y"])
            row = dict(epoch=epoch, train_loss=loss_sum / n, train_acc=correct / n,
                       test_loss=test_loss, test_acc=test_acc,
                       seconds=time.perf_counter() - t0)
            rows.append(row)
            if on_epoch is not None:
                on_epoch(row)
            if progress is not None:
                progress.update(1)
    return rows


def diagnostics_rows(cname: str, seed: int, history) -> list[dict]:
    return [{"config": cname, "seed": seed, "step": step, "parameter": pname, **values}
            for step, result in history for pname, values in result.items()]


def run_metrics(rows: list[dict], target: float) -> dict:
    reached = [r["epoch"] for r in rows if r["test_acc"] >= target]
    return {
        "final_test_acc": rows[-1]["test_acc"],
        "best_test_acc": max(r["test_acc"] for r in rows[1:]),
        "final_train_loss": rows[-1]["train_loss"],
        "final_test_loss": rows[-1]["test_loss"],
        "epochs_to_target": reached[0] if reached else None,
    }


def summarize(values: list) -> dict:
    """Mean and sample std (n-1) over seeds; None values (target never reached) skipped
    and counted in ``n``."""
    vals = [v for v in values if v is not None]
    return {
        "mean": round(statistics.fmean(vals), DIGITS) if vals else None,
        "std": round(statistics.stdev(vals), DIGITS) if len(vals) > 1 else (0.0 if vals else None),
        "n": len(vals),
    }


def summaries(runs: dict) -> dict:
    """Per run metric, its summary over seeds.  A configuration with a diverged seed has
    no result (mean and std None): its surviving seeds would flatter it."""
    if any("diverged_at_epoch" in r for r in runs.values()):
        return {k: {"mean": None, "std": None, "n": 0} for k in RUN_METRICS}
    return {k: summarize([r[k] for r in runs.values()]) for k in RUN_METRICS}


def metrics_file(details: dict) -> dict:
    """The DVC metrics: per configuration, mean and std of each run metric."""
    out = {}
    for cname, c in details["configs"].items():
        out[cname] = {}
        for k, s in c["summary"].items():
            out[cname][k] = {"mean": s["mean"], "std": s["std"]}
            if k == "epochs_to_target":
                out[cname][k]["reached"] = s["n"]
    return out


def _round(d: dict) -> dict:
    return {k: round(v, DIGITS) if isinstance(v, float) else v for k, v in d.items()}


def _curves_csv(rows: list[dict], fields: list[str] = CURVE_FIELDS) -> str:
    buf = _io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (f"{v:.{DIGITS}f}" if isinstance(v, float) else v)
                         for k, v in r.items()})
    return buf.getvalue()


def configure_determinism() -> None:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False


def _one_run(name, spec, module, cfg, cname, seed, cdata, device, bar, show_bar, run_params,
             tags, tmp, trained=None):
    """One (configuration, seed) as one MLflow run; returns (metrics, times, curve rows,
    diagnostics rows).  Raises ``Diverged`` (the MLflow run ends FAILED, tagged).
    ``trained``: the rows of this seed when it was trained stacked with its siblings
    (``experiments.stacked``); they are logged as if trained here."""
    with tracking.start(name, f"{cname}-seed{seed}", run_params,
                        {**tags, "config": cname, "seed": seed}) as mlrun:

        def on_epoch(row):
            msg = (f"{name} {cname} seed={seed} epoch {row['epoch']}/"
                   f"{spec['epochs']} train_loss={row['train_loss']:.4f} "
                   f"test_acc={row['test_acc']:.4f} ({row['seconds']:.2f}s)")
            (bar.write(msg) if show_bar else log.info(msg))
            mlrun.log_epoch(row["epoch"], {
                "train_loss": row["train_loss"], "train_acc": row["train_acc"],
                "test_loss": row["test_loss"], "test_acc": row["test_acc"],
                "epoch_seconds": row["seconds"]})

        def diag_log(metrics, step):
            mlrun.log_epoch(step, {f"diag/{k}": v for k, v in metrics.items()
                                   if math.isfinite(v)})

        made = []  # the run's GradientDiagnostics, if it has one

        def diagnostics(model):
            made.append(make_diagnostics(spec, cfg, seed, model, diag_log))
            return made[-1]

        try:
            if trained is not None:
                rows = trained
                for row in rows[1:]:
                    on_epoch(row)
                    bar.update(1)
            else:
                rows = fit(module, spec, cfg, seed, cdata, device, on_epoch, bar,
                           diagnostics if diagnosed(spec, cfg, cname, seed) else None)
        except Diverged as e:
            mlrun.set_tag("diverged", str(e))
            raise
        diag_rows = [r for diag in made for r in diagnostics_rows(cname, seed, diag.history)]
        m = _round(run_metrics(rows, spec["target_accuracy"]))
        epoch_s = [r["seconds"] for r in rows[1:]]
        times = {"mean_epoch_seconds": statistics.fmean(epoch_s), "epoch_seconds": epoch_s}
        run_rows = _curve_rows(cname, seed, rows)
        run_dir = Path(tmp) / f"{cname}-seed{seed}"
        run_dir.mkdir()
        io.write_json(run_dir / "metrics.json", {"config": cname, "seed": seed, **m, **times})
        io.write_text(run_dir / "curves.csv", _curves_csv(run_rows))
        mlrun.log_artifact(run_dir / "metrics.json")
        mlrun.log_artifact(run_dir / "curves.csv")
    return m, times, run_rows, diag_rows


def _curve_rows(cname: str, seed: int, rows: list[dict]) -> list[dict]:
    return [{"config": cname, "seed": seed, **r} for r in rows]


def stacked_rows(name, module, spec, cfg, cname, cdata, device) -> list | None:
    """Every seed's rows trained together (``stack_seeds: true``), or None: not asked for,
    not eligible (logged), or a seed diverged (then one seed at a time reports it)."""
    if not spec.get("stack_seeds") or len(spec["seeds"]) < 2:
        return None
    from experiments import stacked

    why_not = stacked.eligible(module, spec, cfg, cdata["meta"])
    if why_not is not None:
        log.info("%s %s: seeds trained one at a time (%s)", name, cname, why_not)
        return None
    try:
        return stacked.fit_seeds(module, spec, cfg, spec["seeds"], cdata, device)
    except stacked.SeedDiverged:
        log.info("%s %s: a seed diverged when stacked; training one seed at a time", name, cname)
        return None


def run_experiment(name: str, params: dict | None = None, root: Path | None = None) -> dict:
    """Train every configuration and seed of ``name``; write metrics, runs, curves, timings.

    Returns the details written to ``reports/runs/<name>.json``."""
    params = params if params is not None else params_mod.load()
    profile = params["profile"]
    spec = params_mod.resolve(params, name)
    module = params_mod.task_module(spec["task"])
    configure_determinism()
    device = pick_device()
    if spec.get("threads") and device.type == "cpu":
        # Tiny models: intra-op threads only add synchronisation (and, on a busy machine,
        # spinning that can make an epoch 100x slower).
        torch.set_num_threads(spec["threads"])
    t_stage = time.perf_counter()
    data = module.prepare(data_mod.load(spec["dataset"]), device)
    if not hasattr(module, "config_data"):
        data = limit(data, spec)
    import freegrad as fg

    tags = {"git_commit": tracking.git_commit(), "dvc_stage": f"train@{name}",
            "freegrad_version": fg.__version__, "profile": profile, "device": device.type}
    show_bar = sys.stderr.isatty()
    n_runs = len(spec["configs"]) * len(spec["seeds"])
    log.info("train@%s: profile=%s device=%s runs=%d epochs=%d", name, profile, device.type,
             n_runs, spec["epochs"])

    details = {"experiment": name, "stage": f"train@{name}", "profile": profile,
               "title": spec["title"], "dataset": spec["dataset"],
               "settings": {k: spec[k] for k in ("optimizer", "lr", "momentum", "batch_size",
                                                 "epochs", "seeds", "target_accuracy")
                            } | {k: spec[k] for k in ("train_limit", "test_limit")
                                 if k in spec},
               "data": data["meta"], "configs": {}}
    timings = {"experiment": name, "device": device.type, "configs": {}}
    curves: list[dict] = []
    diag_rows: list[dict] = []
    with tqdm(total=n_runs * spec["epochs"], disable=not show_bar, desc=name,
              unit="epoch") as bar, tempfile.TemporaryDirectory() as tmp:
        for cname, cfg in spec["configs"].items():
            runs, times = {}, {}
            cdata = limit(configuration_data(module, data, cfg), spec)
            overrides = {"batch_size": setting(spec, cfg, "batch_size"),
                         "lr": setting(spec, cfg, "lr")}
            trained = stacked_rows(name, module, spec, cfg, cname, cdata, device)
            for i, seed in enumerate(spec["seeds"]):
                run_params = {"experiment": name, "config": cname, "seed": seed,
                              "profile": profile, **{k: v for k, v in spec.items()
                                                     if k not in ("configs", "title")},
                              **overrides, "rule": cfg, "data": cdata["meta"]}
                try:
                    run = _one_run(name, spec, module, cfg, cname, seed, cdata, device, bar,
                                   show_bar, run_params, tags, tmp,
                                   None if trained is None else trained[i])
                except Diverged as e:
                    msg = (f"error: {name} {cname} seed={seed} diverged: {e}; this run stops "
                           "(MLflow FAILED) and the configuration is reported as diverged")
                    (bar.write(msg, file=sys.stderr) if show_bar else log.error(msg))
                    runs[f"seed_{seed}"] = {**{k: None for k in RUN_METRICS},
                                            "diverged_at_epoch": e.epoch}
                    curves += _curve_rows(cname, seed, e.rows)
                    continue
                m, times[f"seed_{seed}"], run_rows, run_diag = run
                runs[f"seed_{seed}"] = m
                curves += run_rows
                diag_rows += run_diag
            details["configs"][cname] = {
                "forward": cfg["forward"], "backward": cfg["backward"],
                "rule_params": cfg["rule_params"], "provenance": cfg["provenance"],
                **overrides,
                **{k: cfg[k] for k in getattr(module, "EXTRA_CONFIG_KEYS", {}) if k in cfg},
                "summary": summaries(runs),
                "diverged": sum("diverged_at_epoch" in r for r in runs.values()),
                "runs": runs,
            }
            timings["configs"][cname] = {
                "stacked_seeds": trained is not None,
                "mean_epoch_seconds": summarize([t["mean_epoch_seconds"]
                                                 for t in times.values()]),
                "runs": times,
            }

    root = Path(root) if root is not None else paths.ROOT
    io.write_json(root / paths.METRICS.relative_to(paths.ROOT) / f"{name}.json",
                  metrics_file(details))
    io.write_json(root / paths.RUNS.relative_to(paths.ROOT) / f"{name}.json", details)
    io.write_text(root / paths.CURVES.relative_to(paths.ROOT) / f"{name}.csv",
                  _curves_csv(curves))
    io.write_text(root / paths.DIAGNOSTICS.relative_to(paths.ROOT) / f"{name}.csv",
                  _curves_csv(diag_rows, DIAG_FIELDS))
    timings["stage_seconds"] = round(time.perf_counter() - t_stage, 3)
    timings["torch_threads"] = torch.get_num_threads()
    io.write_json(root / paths.TIMINGS.relative_to(paths.ROOT) / f"{name}.json", timings)
    return details


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Train one experiment (a DVC train stage)")
    parser.add_argument("experiment", help="a key of `experiments` in params.yaml")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    for noisy in ("mlflow", "alembic", "sqlalchemy", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    tracking.install_sigterm_handler()
    try:
        params = params_mod.load()
        params_mod.resolve(params, args.experiment)
        run_experiment(args.experiment, params)
    except (params_mod.ParamsError, data_mod.DataError, tracking.TrackingError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
