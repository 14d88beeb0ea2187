"""The pinned environment: requirements.lock holds every package the project needs, at the
version installed here (so `make install` next year builds this same stack)."""

from __future__ import annotations

import ast
import json
import re
from importlib import metadata

import yaml
from packaging.requirements import Requirement

from experiments.results import paths
from tests.conftest import new_workspace, sh

LOCK = paths.ROOT / "requirements.lock"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not an exact pin (name==version)"
            pins[_canonical(name)] = version
    return pins


def _needed(root: str, extras: tuple[str, ...] = ()) -> set[str]:
    """Every distribution `root` (with extras) needs on this platform, recursively."""
    seen, todo = set(), [(root, extras)]
    while todo:
        name, extra = todo.pop()
        for spec in metadata.requires(name) or []:
            req = Requirement(spec)
            env = [{"extra": e} for e in extra] or [{"extra": ""}]
            if req.marker and not any(req.marker.evaluate(e) for e in env):
                continue
            key = _canonical(req.name)
            if key not in seen:
                seen.add(key)
                todo.append((req.name, tuple(req.extras)))
    return seen


def test_the_lock_pins_every_dependency_at_the_installed_version():
    pins = _locked()
    needed = _needed("freegrad-experiments", ("dev",)) | _needed("freegrad")
    assert needed - set(pins) == set(), "not in requirements.lock: run `make lock`"
    wrong = {n: (pins[n], metadata.version(n)) for n in needed
             if metadata.version(n) != pins[n]}
    assert wrong == {}, "installed != locked (name: (locked, installed)); run `make install`"
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"


def test_make_install_installs_from_the_lock():
    makefile = (paths.ROOT / "Makefile").read_text()
    assert "pip install --quiet -c requirements.lock" in makefile


def test_build_artefacts_in_a_fresh_clone_are_no_stage_dependency(tmp_path_factory):
    """The egg-info `make install` leaves beside the package (and any other build artefact
    `.dvcignore` names) changes no stage's dependency: a stage that depends on
    libs/freegrad/src, run in a fresh clone, stays up to date when the artefact appears."""
    ws = new_workspace(tmp_path_factory, "clone")
    repo, env = ws["repo"], ws["env"]
    sh(["dvc", "stage", "add", "--name", "probe", "--deps", "libs/freegrad/src", "true"], repo,
       env)
    sh(["dvc", "repro", "--single-item", "probe"], repo, env)
    assert _changed(repo, env) == {}
    info = repo / "libs/freegrad/src/freegrad.egg-info"
    info.mkdir()
    (info / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: freegrad\n")
    (repo / "libs/freegrad/src/freegrad/__pycache__").mkdir(exist_ok=True)
    (repo / "libs/freegrad/src/freegrad/__pycache__/x.cpython-311.pyc").write_bytes(b"\0")
    assert _changed(repo, env) == {}
    (repo / "libs/freegrad/src/freegrad/new_module.py").write_text("# a real change\n")
    assert _changed(repo, env) == {"probe": ["libs/freegrad/src"]}  # the probe can fail


def _changed(repo, env) -> dict:
    """{stage: changed deps} of the probe stage, as `dvc status` reports them."""
    status = json.loads(sh(["dvc", "status", "--json", "probe"], repo, env).stdout)
    return {stage: sorted(dep for e in entries if isinstance(e, dict)
                          for dep in e.get("changed deps", {}))
            for stage, entries in status.items()}


def _imported_modules(module: str, seen: set[str] | None = None) -> set[str]:
    """The ``experiments`` modules ``module`` imports, recursively (static imports)."""
    seen = set() if seen is None else seen
    path = paths.ROOT / (module.replace(".", "/") + ".py")
    seen.add(module)
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("experiments"):
            names = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("experiments")]
        for name in names:
            if (paths.ROOT / (name.replace(".", "/") + ".py")).is_file() and name not in seen:
                _imported_modules(name, seen)
    return seen


def _module_file(module: str) -> str | None:
    """The repository file of ``module`` (a package's ``__init__.py``), or None."""
    for rel in (module.replace(".", "/") + ".py", module.replace(".", "/") + "/__init__.py"):
        if (paths.ROOT / rel).is_file():
            return rel
    return None


def test_train_stages_depend_on_every_module_they_import():
    """A module the stage runs but dvc.yaml does not cover (as a file or inside a folder it
    lists) would change results unseen; and the deps are packages, a handful, not a file list."""
    deps = yaml.safe_load((paths.ROOT / "dvc.yaml").read_text())["stages"]["train"]["do"]["deps"]
    code = [d for d in deps if not d.startswith("data/")]
    modules = _imported_modules("experiments.training.__main__")
    packages = {m.rsplit(".", i)[0] for m in modules for i in range(1, m.count(".") + 1)}
    files = {f for m in modules | packages if (f := _module_file(m)) is not None}
    uncovered = {f for f in files if not any(f == d or f.startswith(d.rstrip("/") + "/")
                                              for d in code)}
    assert uncovered == set(), "add these (or their package) to the train stages' deps"
    assert len(code) <= 7, code
    assert not any(d.startswith("experiments/analysis") for d in code)
