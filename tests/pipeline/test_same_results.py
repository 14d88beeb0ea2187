"""experiments.same_results: the check that two commits train to the same bytes, which justifies
``dvc commit`` of a train stage after a change that must not alter results."""

import re

import pytest

from experiments import config as P
from experiments import data as D
from experiments import same_results


def _write(root, name, text):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_changed_or_one_sided_file_is_reported_and_other_folders_are_not_compared(tmp_path):
    before, after = tmp_path / "before", tmp_path / "after"
    for root in (before, after):
        _write(root, "metrics/suc.json", '{"acc": 0.5}')
        _write(root, "tables/suc.md", str(root))  # not compared: made from the compared files
    _write(before, "runs/suc.json", "1")
    _write(after, "runs/suc.json", "2")
    _write(after, "curves/suc_seed0.csv", "epoch\n")
    bad, total = same_results.differing(before, after)
    assert bad == ["curves/suc_seed0.csv", "runs/suc.json"] and total == 3


def test_a_commit_trains_to_the_same_bytes_as_itself(tmp_path, capsys):
    """A real run: two clones of HEAD train suc's smoke profile; every report file is the same."""
    processed = tmp_path / "processed"
    D.write_datasets(P.load(import_modules=False), processed, tmp_path / "raw", only=("ones",))
    code = same_results.main(["HEAD", "HEAD", "--profile", "smoke", "--experiments", "suc",
                              "--data", str(processed)])
    out = capsys.readouterr().out
    assert code == 0, out
    written = re.search(r"(\d+) of \1 files in reports/\S+ identical", out)
    assert written and int(written.group(1)) >= 4, out  # suc's metrics, runs, curves, diagnostics
    assert "differs" not in out


def test_no_prepared_datasets_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit):
        same_results.main(["HEAD", "--data", str(tmp_path)])
    assert "dvc repro data" in capsys.readouterr().err
