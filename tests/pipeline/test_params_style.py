"""params.yaml is written in the style `dvc exp run -S` writes back (issue 16): block lists
and mappings, an empty value for null, no YAML anchors, comments where DVC's round trip
keeps them (on a key's line, or the full lines under a key).  So `-S` changes exactly the
lines it sets, and `git diff params.yaml` after an experiment shows only what it changed.

`dvc.utils.hydra.apply_overrides` is what `dvc exp run -S` calls on params.yaml; the real
command is run by tests/pipeline/test_newcomer.py."""

from __future__ import annotations

import shutil

import pytest

from experiments.results import paths

# -S override -> the line it must leave in its place (every other line unchanged)
CASES = {
    "experiments.suc.lr=0.2": "    lr: 0.2            # paper, Table 2",
    "profile=quick": "profile: quick",
    "executor.address=tcp://head:8786":
        "  address: tcp://head:8786 # dask: empty (null) starts a distributed.LocalCluster;"
        " tcp://host:8786 uses a running scheduler",
    "data.ones.n=4000": "    n: 4000",
    "claims.delta=0.02": "  delta: 0.02          # our choice: one accuracy point",
}


def _set(tmp_path, override: str) -> tuple[list[str], list[str]]:
    from dvc.utils.hydra import apply_overrides

    dst = tmp_path / "params.yaml"
    shutil.copy(paths.PARAMS, dst)
    before = dst.read_text().splitlines()
    apply_overrides(dst, [override])
    return before, dst.read_text().splitlines()


@pytest.mark.parametrize("override", list(CASES))
def test_set_param_changes_exactly_its_line(tmp_path, override):
    before, after = _set(tmp_path, override)
    assert len(after) == len(before), "DVC's writer added or removed lines"
    changed = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert len(changed) == 1 and changed[0][1] == CASES[override], changed


def test_setting_the_same_value_changes_nothing(tmp_path):
    before, after = _set(tmp_path, "experiments.suc.lr=0.1")
    assert after == before


def test_setting_a_list_changes_only_its_items(tmp_path):
    import difflib

    before, after = _set(tmp_path, "experiments.suc.seeds=[0,1,2]")
    diff = [d for d in difflib.unified_diff(before, after, lineterm="", n=0)
            if d[:1] in "+-" and not d.startswith(("+++", "---"))]
    assert diff == ["-    - 3", "-    - 4"], diff
