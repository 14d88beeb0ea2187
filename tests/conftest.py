"""Fixtures shared by tests/pipeline and tests/paper.

``smoke_workspace`` runs the real pipeline once per session: `dvc exp run -S profile=smoke`
in a temporary copy of the repository (every stage, the paper last).  Where the paper's
toolchain does not work (``paper/toolchain.sh probe``) it runs every stage but ``paper``, so
the pipeline tests still run.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from experiments.results import paths

EXCLUDE = ("dvc.lock", "reports/", "data/", "mlruns", "paper/generated/", "paper/paper.pdf")


def sh(args, cwd, env, timeout=600, check=True):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def copy_repo(dst: Path) -> None:
    """Copy the files git knows about (tracked or not ignored), as a fresh clone has them."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=paths.ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, listed.decode().split("\0")):
        src = paths.ROOT / rel
        if rel.startswith(EXCLUDE) or not src.is_file():
            continue
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst / rel)


@functools.cache
def paper_toolchain_problem() -> str | None:
    """Why the paper cannot be built on this machine, or None: ``paper/toolchain.sh probe``
    compiles a page with the paper's template (a `which xelatex` misses fonts and packages)."""
    proc = subprocess.run([str(paths.ROOT / "paper" / "toolchain.sh"), "probe"],
                          capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode == 0:
        return None
    return (f"the paper's toolchain does not work ({proc.stderr.strip()}); `make paper-tools` "
            "installs paper/apt-packages.txt as root, or prints the apt-get line")


def _mirror() -> Path | None:
    env = os.environ.get("FREEGRAD_DATA_MIRROR")
    for cand in ([Path(env)] if env else []) + [paths.ROOT.parent / "shared" / "datasets"]:
        if (cand / "MNIST" / "raw").is_dir():
            return cand.resolve()
    return None


def new_workspace(tmp_path_factory, name: str) -> dict:
    """A copy of the repository as a fresh clone has it, in its own git and DVC repo, with
    its own MLflow store and an environment running this venv's tools on the CPU against
    the MNIST mirror.  Skips the test when no mirror is found."""
    mirror = _mirror()
    if mirror is None:
        pytest.skip("no MNIST mirror: set FREEGRAD_DATA_MIRROR (CI uses ../shared/datasets)")
    repo = tmp_path_factory.mktemp(name)
    store = tmp_path_factory.mktemp(f"{name}-mlflow")
    copy_repo(repo)
    venv_bin = Path(sys.executable).parent
    env = {**os.environ,
           "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
           "FREEGRAD_DATA_MIRROR": str(mirror),
           "MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlruns.db'}",
           "DVC_NO_ANALYTICS": "1",
           "GIT_CONFIG_GLOBAL": os.devnull,
           "FREEGRAD_DEVICE": "cpu"}
    env.pop("DVC_EXP_NAME", None)
    sh(["git", "init", "-q", "-b", "main"], repo, env)
    sh(["git", "config", "user.name", "pipeline test"], repo, env)
    sh(["git", "config", "user.email", "pipeline-test@example.invalid"], repo, env)
    if not (repo / ".dvc" / "config").exists():
        sh(["dvc", "init", "-q"], repo, env)
    return {"repo": repo, "store": store, "env": env}


@pytest.fixture(scope="session")
def smoke_workspace(tmp_path_factory):
    ws = new_workspace(tmp_path_factory, "repo")
    repo, env = ws["repo"], ws["env"]
    sh(["git", "add", "-A"], repo, env)
    sh(["git", "commit", "-q", "-m", "copy"], repo, env)
    targets = []
    if paper_toolchain_problem():  # every stage but the paper
        stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
        targets = [s for s in stages if s != "paper"]
    # The documented one-switch profile change, run for real.
    first = sh(["dvc", "exp", "run", "-S", "profile=smoke", *targets], repo, env, timeout=1200)
    return {**ws, "first": first, "paper": paper_toolchain_problem() is None}


def without_search(params: dict, name: str) -> dict:
    """``params`` with experiment ``name``'s learning-rate search off (``tuning: null``, in
    every profile too): for tests of the run machinery, whose run counts are then exactly the
    configurations' runs (the search has tests of its own, tests/pipeline/test_tuning.py)."""
    experiment = params["experiments"][name]
    experiment["tuning"] = None
    for profile in experiment.get("profiles", {}).values():
        profile.pop("tuning", None)
    return params
