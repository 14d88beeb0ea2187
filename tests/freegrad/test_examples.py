"""The library's examples run and say what they should."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "libs" / "freegrad" / "examples"
EXPECTED = {
    "quickstart.py": "rectangular: [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0]",
    "convert_and_target.py": "converted 9 activation modules",
    "diagnostics.py": "step  80: cosine",
    "save_and_resume.py": "identical to the uninterrupted one: True",
    "ddp.py": "rank 0: all-reduced grad norm",
}


def test_every_example_is_listed():
    assert {p.name for p in EXAMPLES.glob("*.py")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_runs(name):
    out = subprocess.run([sys.executable, str(EXAMPLES / name)],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert EXPECTED[name] in out.stdout
    assert "changed nothing" not in out.stderr, out.stderr  # every use block bound its rule
