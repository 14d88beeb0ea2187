"""Finished runs kept across invocations of a train stage, so a killed stage resumes.

Each finished unit of work (one (configuration, seed) run, or a configuration's seeds
trained stacked) is stored as soon as it ends, as one JSON file
``.cache/runs/<experiment>/<key>.json`` at the repository root (git- and DVC-ignored;
``dvc exp run --temp`` copies share the repository's cache).  The key hashes everything
that determines the result:

* the content of every dependency ``dvc.yaml`` lists for the stage (code, library, data),
  hashed by DVC itself, exactly as ``dvc.lock`` records them;
* the profile, the experiment's resolved settings, the configuration and the seeds.

Change any of them and the key changes, so nothing stale is reused.  A rerun of the stage
(after a kill, or ``dvc repro -f``: a stage cannot tell the two apart) reuses the entries
whose key matches and trains only the rest; ``FREEGRAD_RETRAIN=1`` trains everything again.
Entries are written atomically; a corrupt or partial one is ignored with one warning.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from experiments.results import files, paths
from experiments.training import binding

log = logging.getLogger("experiments.training.runcache")

RETRAIN_ENV = "FREEGRAD_RETRAIN"


def stage_dependency_hashes(stage: str, root: Path = paths.ROOT) -> dict[str, str]:
    """``{path: hash}`` of every file or directory ``stage`` (e.g. ``train@suc``) depends on,
    computed by DVC as for ``dvc.lock`` (directories hashed with ``.dvcignore`` applied)."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with Repo(str(root)) as repo:  # a target is read from the working directory: name the file
        (resolved,) = repo.stage.collect(f"{Path(root) / 'dvc.yaml'}:{stage}")
        # Params are not hashed here: the key holds the resolved settings themselves, so a
        # new configuration in the experiment leaves its other runs' keys alone.
        return {dep.def_path: str(dep.get_hash().value) for dep in resolved.deps
                if not isinstance(dep, ParamsDependency)}


def digest(obj) -> str:
    """A stable hash of a JSON-able value (keys sorted)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class RunCache:
    """The kept runs of one experiment, for one state of its dependencies."""

    def __init__(self, experiment: str, dependency_hashes: dict[str, str], profile: str,
                 directory: Path | None = None, enabled: bool = True):
        self.directory = (directory or paths.LAYOUT.run_cache()) / experiment
        self.context = {"experiment": experiment, "profile": profile,
                        "dependencies": dependency_hashes}
        self.enabled = enabled and os.environ.get(RETRAIN_ENV, "") in ("", "0")
        self._warned = False

    @classmethod
    def for_stage(cls, name: str, profile: str, layout: paths.Layout = paths.LAYOUT
                  ) -> RunCache:
        """The kept runs of ``train@<name>`` (``layout.run_cache()``), keyed by DVC's hashes
        of the stage's deps; off (every run trained) where the stage cannot be hashed."""
        try:
            hashes = stage_dependency_hashes(f"train@{name}")
        except Exception as e:  # no DVC repository, or a stage dvc.yaml does not define
            log.warning("run cache off for %s (its DVC stage cannot be hashed: %s); every run "
                        "is trained", name, e)
            return cls(name, {}, profile, layout.run_cache(), enabled=False)
        return cls(name, hashes, profile, layout.run_cache())

    def key(self, **determinants) -> str:
        """The entry's name: a hash of the stage's context and ``determinants`` (settings,
        configuration, seeds: whatever else decides the result)."""
        return digest({**self.context, **determinants})

    def key_of(self, job) -> str:
        """A unit's entry: besides the stage's deps and profile, everything that decides
        its runs (the experiment's settings, the configuration, seeds, threads, which seeds
        are diagnosed; for a search run, its validation split)."""
        spec, cfg = job.experiment.spec, job.cfg
        # the search's settings decide a final run only through its rate (in ``cfg``)
        settings = {k: v for k, v in spec.items() if k not in ("configs", "seeds", "tuning")}
        phase = job.experiment.phase
        held = {} if phase == "final" else {"phase": phase,
                                            "validation": spec["tuning"]["validation"]}
        return self.key(settings=settings, config=cfg, seeds=list(job.seeds),
                        threads=job.threads, **held,
                        diagnosed=[binding.diagnosed(spec, cfg, job.config, s)
                                   for s in job.seeds])

    def load(self, key: str) -> dict | None:
        """The entry stored under ``key``, or None (absent, unreadable, or retraining)."""
        path = self.directory / f"{key}.json"
        if not self.enabled or not path.is_file():
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(entry, dict) or entry.get("key") != key:
                raise ValueError("not an entry of this key")
            return entry["value"]
        except (OSError, ValueError, KeyError) as err:
            if not self._warned:
                log.warning("run cache: ignoring unreadable entry %s (%s); it is retrained",
                            path, err)
                self._warned = True
            return None

    def store(self, key: str, value: dict) -> None:
        """Keep ``value`` under ``key`` (atomically: a kill leaves the old state or the new).
        Not strict JSON: a run's diagnostics may hold an infinite norm ratio (the true
        gradient zero where the rule's is not, e.g. a saturated Logistic under ``constant``)."""
        files.write_json(self.directory / f"{key}.json", {"key": key, "value": value}, strict=False)
