"""`make help`: every documented target, the descriptions in one column, two spaces after
the longest name (a name longer than the rest must not run into its description)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from experiments.results import paths

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make")


def _help(*extra: str) -> list[str]:
    args = [a for f in extra for a in ("-f", f)]
    out = subprocess.run(["make", "-s", "-f", "Makefile", *args, "help"], cwd=paths.ROOT,
                         capture_output=True, text=True, timeout=60, check=True).stdout
    return [line for line in out.splitlines() if line.startswith("  make ")]


def _check_aligned(lines: list[str]) -> list[str]:
    names = [re.match(r"  make (.+?)  +\S", line).group(1) for line in lines]
    starts = {re.match(r"  make .+?  +(?=\S)", line).end() for line in lines}
    assert len(starts) == 1, lines  # every description starts in the same column
    assert starts.pop() == len("  make ") + max(map(len, names)) + 2, lines
    return names


def test_help_lists_every_target_aligned():
    documented = re.findall(r"^([a-z][a-z -]*):.*## ", (paths.ROOT / "Makefile").read_text(),
                            flags=re.M)
    assert _check_aligned(_help()) == documented


def test_a_long_target_name_moves_the_column(tmp_path):
    extra = tmp_path / "extra.mk"
    extra.write_text("a-much-longer-target-name: ## a made-up target\n")
    lines = _help(str(extra))
    assert _check_aligned(lines)[-1] == "a-much-longer-target-name"
    assert lines[-1].endswith("a-much-longer-target-name  a made-up target")
