import os
import shutil
import subprocess
import sys

import pytest
import torch

from experiments import config as P
from experiments import data as D
from experiments.results import paths


def test_ones_follows_its_definition():
    d, n, tau = 10, 2000, 0.7
    a = D.make_ones(d=d, n=n, tau=tau, test_fraction=0.2, seed=0)
    b = D.make_ones(d=d, n=n, tau=tau, test_fraction=0.2, seed=0)
    assert all(torch.equal(a[k], b[k]) for k in ("train_x", "train_y", "test_x", "test_y"))
    assert len(a["train_x"]) == 1600 and len(a["test_x"]) == 400
    x = torch.cat([a["train_x"], a["test_x"]])
    y = torch.cat([a["train_y"], a["test_y"]])
    assert set(x.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(y, (x.mean(1) > tau).float())
    k = x.sum(1).long()
    counts = torch.bincount(k, minlength=d + 1)
    assert len(counts) == d + 1 and counts.min() > 100  # every weight 0..d, roughly uniform
    c = D.make_ones(d=d, n=n, tau=tau, test_fraction=0.2, seed=1)
    assert not torch.equal(a["train_x"], c["train_x"])


def test_digits_from_scikit_learn():
    digits = D.make_digits()
    assert digits["x"].shape == (1797, 8, 8) and digits["x"].dtype == torch.uint8


def _params(mirror=None):
    p = P.load(import_modules=False)
    p["data"]["mirror"] = str(mirror) if mirror else None
    return p


def test_mnist_from_mirror(mirror, tmp_path):
    before = {f: f.stat().st_mtime for f in (mirror / "MNIST" / "raw").iterdir()}
    out = D.write_datasets(_params(mirror), tmp_path / "processed", tmp_path / "raw",
                           only=("mnist",))
    data = torch.load(out[0], weights_only=True)
    assert data["train_x"].shape == (60000, 28, 28) and data["train_x"].dtype == torch.uint8
    assert data["test_y"].shape == (10000,) and int(data["test_y"].max()) == 9
    assert (tmp_path / "raw" / "MNIST" / "raw" / "train-images-idx3-ubyte.gz").is_file()
    after = {f: f.stat().st_mtime for f in (mirror / "MNIST" / "raw").iterdir()}
    assert before == after  # raw data is never edited


@pytest.fixture()
def broken_mirror(mirror, tmp_path):
    bad = tmp_path / "mirror"
    shutil.copytree(mirror / "MNIST", bad / "MNIST")
    target = bad / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(target.read_bytes()[:-100])  # truncated
    return bad


def test_corrupted_file_is_a_clear_error(broken_mirror, tmp_path):
    with pytest.raises(D.DataError) as err:
        D.write_datasets(_params(broken_mirror), tmp_path / "p", tmp_path / "raw", only=("mnist",))
    msg = str(err.value)
    assert "t10k-labels-idx1-ubyte.gz" in msg
    assert "ec29112dd5afa0611ce80d1b7f02629c" in msg  # torchvision's expected MD5
    assert "FREEGRAD_DATA_MIRROR" in msg and "data.mirror" in msg


def test_missing_file_is_a_clear_error(broken_mirror, tmp_path):
    (broken_mirror / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(D.DataError, match="missing file .*train-labels-idx1-ubyte.gz.*d53e105e"):
        D.write_datasets(_params(broken_mirror), tmp_path / "p", tmp_path / "raw", only=("mnist",))


def test_data_stage_cli_reports_corruption(broken_mirror):
    env = {**os.environ, "FREEGRAD_DATA_MIRROR": str(broken_mirror)}
    proc = subprocess.run([sys.executable, "-m", "experiments.data", "--only", "mnist"],
                          cwd=paths.ROOT, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    # The CLI must fail before writing anything for the corrupted dataset.
    assert proc.returncode == 1
    assert "corrupted file" in proc.stderr and "t10k-labels-idx1-ubyte.gz" in proc.stderr


def test_processed_files_are_byte_identical_across_processes(tmp_path):
    """torch.save's per-process serialization id is zeroed: the data stage's hashes repeat."""
    import subprocess
    import sys

    from experiments.results import paths

    code = ("import sys; from experiments import data; from experiments.results import files; "
            "files.write_torch(sys.argv[1], data.make_ones(10, 200, 0.7, 0.2, 0))")
    for name in ("a.pt", "b.pt"):
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], cwd=paths.ROOT,
                       check=True, timeout=120)
    a, b = (tmp_path / "a.pt").read_bytes(), (tmp_path / "b.pt").read_bytes()
    assert a == b
    import torch

    assert torch.load(tmp_path / "a.pt", weights_only=True)["meta"]["d"] == 10
