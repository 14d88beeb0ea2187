"""Do two commits train to the same bytes? The check before ``dvc commit`` of a change that must
not alter results (a faster kernel in ``libs/freegrad/src``, say), instead of retraining.

    python -m experiments.same_results BASE [HEAD] [--profile quick] [--experiments suc mlp ...]
                                       [--data data/processed]

Clones this repository twice (``git clone --shared``, into a temporary folder), checks out BASE
and HEAD (default: HEAD), copies the prepared datasets (``--data``, default this checkout's
``data/processed``, made by ``dvc repro data``) into both, sets ``profile``, and trains every
experiment (default: all of ``params.yaml``) with ``FREEGRAD_RETRAIN=1`` in each clone, the two
sides at once, each with its own ``experiments`` and ``freegrad`` first on ``PYTHONPATH``. Then
it compares the clones' ``reports/{metrics,runs,curves,diagnostics}``, file by file, byte for
byte. Exit status 0: every file is identical, and ``dvc commit train@<name>`` may record the new
code for the committed results.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from experiments.config import load as load_params
from experiments.results import paths

COMPARED = ("metrics", "runs", "curves", "diagnostics")


def differing(before: Path, after: Path) -> tuple[list[str], int]:
    """(files under ``COMPARED`` that differ or exist on one side only, files compared)."""
    names = set()
    for root in (before, after):
        names |= {p.relative_to(root).as_posix() for folder in COMPARED
                  for p in (root / folder).rglob("*") if p.is_file()}
    bad = [n for n in sorted(names)
           if not ((before / n).is_file() and (after / n).is_file()
                   and filecmp.cmp(before / n, after / n, shallow=False))]
    return bad, len(names)


def prepare(commit: str, clone: Path, profile: str, data: Path) -> None:
    subprocess.run(["git", "clone", "--quiet", "--shared", str(paths.ROOT), str(clone)],
                   check=True)
    subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", commit], check=True)
    shutil.copytree(data, clone / paths.PROCESSED.relative_to(paths.ROOT))
    reports = clone / paths.LAYOUT.rel(paths.LAYOUT.reports)
    for folder in COMPARED:  # the committed reports go: only what this run writes is compared
        shutil.rmtree(reports / folder, ignore_errors=True)
    params = clone / "params.yaml"
    text = params.read_text()
    if "\nprofile: " not in text:
        raise SystemExit(f"{commit}: params.yaml has no top-level 'profile:' line to set")
    params.write_text("\n".join(f"profile: {profile}" if line.startswith("profile: ") else line
                                for line in text.split("\n")))


def train_command(clone: Path, experiment: str) -> str:
    """The clone's own ``train@<experiment>`` command, from its dvc.yaml (the module that
    trains may differ between the two commits), run with this interpreter."""
    cmd = yaml.safe_load((clone / "dvc.yaml").read_text())["stages"]["train"]["do"]["cmd"]
    words = shlex.split(cmd.replace("${key}", experiment))
    if words[0] != "python":
        raise SystemExit(f"{clone}: the train stage's command {cmd!r} does not start with python")
    return shlex.join([sys.executable, *words[1:]])


def train(clone: Path, experiments: list[str], log) -> subprocess.Popen:
    """Every experiment, one after the other, in the clone's own code (a shell loop)."""
    env = os.environ | {"FREEGRAD_RETRAIN": "1", "PYTHONPATH": os.pathsep.join(
        [str(clone / "libs" / "freegrad" / "src"), str(clone)])}
    script = " && ".join(train_command(clone, e) for e in experiments)
    return subprocess.Popen(["sh", "-c", script], cwd=clone, env=env, stdout=log,
                            stderr=subprocess.STDOUT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base")
    parser.add_argument("head", nargs="?", default="HEAD")
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--experiments", nargs="+", default=None)
    parser.add_argument("--data", type=Path, default=paths.PROCESSED,
                        help="the prepared datasets to train on (default: %(default)s)")
    args = parser.parse_args(argv)
    if not any(args.data.glob("*.pt")):
        parser.error(f"no prepared datasets in {args.data}: run `dvc repro data` first")
    experiments = args.experiments or list(load_params(import_modules=False)["experiments"])
    with tempfile.TemporaryDirectory(prefix="same-results-") as tmp:
        sides = {side: Path(tmp) / side for side in ("base", "head")}
        for side, commit in (("base", args.base), ("head", args.head)):
            prepare(commit, sides[side], args.profile, args.data)
        logs = {side: open(Path(tmp) / f"{side}.log", "w") for side in sides}  # noqa: SIM115
        runs = {side: train(sides[side], experiments, logs[side]) for side in sides}
        failed = [side for side, run in runs.items() if run.wait() != 0]
        for log in logs.values():
            log.close()
        for side in failed:
            sys.stdout.write((Path(tmp) / f"{side}.log").read_text()[-3000:])
            print(f"training failed at {side} ({getattr(args, side)})")
        if failed:
            return 2
        reports = paths.LAYOUT.reports.relative_to(paths.ROOT)
        bad, total = differing(sides["base"] / reports, sides["head"] / reports)
    print(f"{args.base} and {args.head}, profile {args.profile}, {', '.join(experiments)}: "
          f"{total - len(bad)} of {total} files in reports/{{{','.join(COMPARED)}}} identical")
    for name in bad:
        print(f"differs: reports/{name}")
    if total == 0:
        print("no report files were written: nothing was compared")
    return 1 if bad or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
