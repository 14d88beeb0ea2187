"""The pinned environment: requirements.lock holds every package the project needs, at the
version installed here (so `make install` next year builds this same stack)."""

from __future__ import annotations

import re
from importlib import metadata

from packaging.requirements import Requirement

from experiments import paths

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
