"""The ``data`` stage (``python -m experiments.data``): it writes ``data/processed/<name>.pt``:

* ``mnist``, ``fashion_mnist``: torchvision's MNIST / FashionMNIST.  With a
  local mirror (``data.mirror`` in params.yaml, else ``$FREEGRAD_DATA_MIRROR``)
  the ``.gz`` files are checked against torchvision's MD5 sums, copied into
  ``data/raw/<Dataset>/raw/`` and read by torchvision without any download.
  Without a mirror torchvision downloads them (and checks the same sums).
  The mirror itself is only read, never edited.
* ``digits``: scikit-learn's DIGITS (ships with scikit-learn).
* ``ones``: the synthetic "Ones" set, generated from ``data.ones.seed``.
* ``ones_bnn``: "Ones" for the binary units, one set per input size in
  ``data.ones_bnn.d`` (``{"sets": {d: {train_x, ...}}}``).

Each file is a dict of tensors plus ``meta`` (plain values); images stay
uint8.  Training code loads them whole into memory (``experiments.results.datasets``) and
batches by index.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

import torch

from experiments import config
from experiments.results import files, paths
from experiments.results.datasets import DataError

MIRROR_ENV = "FREEGRAD_DATA_MIRROR"
TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}


def mirror_dir(params: dict) -> Path | None:
    mirror = params["data"].get("mirror") or os.environ.get(MIRROR_ENV) or None
    return Path(mirror).expanduser().resolve() if mirror else None


def _how_to_provide(folder: str, filename: str) -> str:
    return (
        f"Provide the original file as <mirror>/{folder}/raw/{filename}, with <mirror> set by "
        f"`data.mirror` in params.yaml or ${MIRROR_ENV}; or set neither to let torchvision "
        "download it."
    )


def fetch_torchvision(name: str, raw_root: Path, mirror: Path | None) -> dict:
    """Place, verify and read one torchvision dataset; return uint8 tensors."""
    from torchvision import datasets
    from torchvision.datasets.utils import calculate_md5, check_integrity, extract_archive

    cls = getattr(datasets, TORCHVISION[name])
    folder = cls.__name__
    raw_folder = paths.torchvision_raw(raw_root, folder)
    if mirror is None:
        try:
            train = cls(str(raw_root), train=True, download=True)
            test = cls(str(raw_root), train=False, download=True)
        except Exception as e:  # no network, a mirror down, a bad checksum
            raise DataError(
                f"{folder}: torchvision could not download or verify it into {raw_folder} ({e}). "
                f"Provide the files {', '.join(f for f, _ in cls.resources)} (MD5 sums: "
                f"{', '.join(m for _, m in cls.resources)}) in <mirror>/{folder}/raw/ and set "
                f"`data.mirror` in params.yaml or ${MIRROR_ENV} to <mirror>."
            ) from e
    else:
        for filename, md5 in cls.resources:  # verify every file before touching anything
            src = paths.torchvision_raw(mirror, folder) / filename
            if not src.is_file():
                raise DataError(
                    f"{folder}: missing file {src} (expected MD5 {md5}). "
                    + _how_to_provide(folder, filename)
                )
            if not check_integrity(str(src), md5):
                raise DataError(
                    f"{folder}: corrupted file {src}: MD5 {calculate_md5(str(src))}, "
                    f"expected {md5}. " + _how_to_provide(folder, filename)
                )
        raw_folder.mkdir(parents=True, exist_ok=True)
        for filename, md5 in cls.resources:
            src = paths.torchvision_raw(mirror, folder) / filename
            dst = raw_folder / filename
            if not check_integrity(str(dst), md5):
                shutil.copyfile(src, dst)
            extract_archive(str(dst), str(raw_folder), remove_finished=False)
        train = cls(str(raw_root), train=True, download=False)
        test = cls(str(raw_root), train=False, download=False)
        for filename, _ in cls.resources:  # keep the verified .gz, drop what was extracted
            (raw_folder / filename.removesuffix(".gz")).unlink(missing_ok=True)
    return {
        "train_x": train.data.to(torch.uint8).contiguous(),
        "train_y": train.targets.to(torch.int64).contiguous(),
        "test_x": test.data.to(torch.uint8).contiguous(),
        "test_y": test.targets.to(torch.int64).contiguous(),
        "meta": {"name": name, "source": f"torchvision.datasets.{folder}", "classes": 10},
    }


def make_digits() -> dict:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return {
        "x": torch.as_tensor(bunch.images, dtype=torch.uint8).contiguous(),  # (1797, 8, 8), 0..16
        "y": torch.as_tensor(bunch.target, dtype=torch.int64).contiguous(),
        "meta": {"name": "digits", "source": "sklearn.datasets.load_digits", "classes": 10},
    }


def make_ones(d: int, n: int, tau: float, test_fraction: float, seed: int) -> dict:
    """K ~ Uniform{0..d} ones at uniformly random positions; label 1{mean(x) > tau}."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(0, d + 1, (n,), generator=g)
    ranks = torch.rand(n, d, generator=g).argsort(dim=1).argsort(dim=1)
    x = (ranks < k[:, None]).to(torch.float32)
    y = (x.mean(dim=1) > tau).to(torch.float32)
    perm = torch.randperm(n, generator=g)
    n_test = int(round(n * test_fraction))
    test, train = perm[:n_test], perm[n_test:]
    return {
        "train_x": x[train].contiguous(),
        "train_y": y[train].contiguous(),
        "test_x": x[test].contiguous(),
        "test_y": y[test].contiguous(),
        "meta": {
            "name": "ones", "source": "generated", "d": d, "n": n, "tau": tau,
            "test_fraction": test_fraction, "seed": seed,
        },
    }


def make_ones_sets(d: list[int], n: int, tau: float, test_fraction: float, seed: int) -> dict:
    """One "Ones" set per input size (the binary units), each from ``seed``."""
    sets = {str(di): make_ones(di, n, tau, test_fraction, seed) for di in d}
    return {"sets": sets, "meta": {"name": "ones_bnn", "source": "generated", "d": list(d),
                                   "n": n, "tau": tau, "test_fraction": test_fraction,
                                   "seed": seed}}


def write_datasets(params: dict, out_dir: Path = paths.PROCESSED, raw_root: Path = paths.RAW,
            only: tuple[str, ...] = config.DATASETS) -> list[Path]:
    """Run the data stage; return the files written."""
    mirror = mirror_dir(params)
    if mirror is not None and not mirror.is_dir():
        raise DataError(f"data mirror {mirror} is not a folder (from data.mirror or ${MIRROR_ENV})")
    written = []
    for name in only:
        if name in TORCHVISION:
            data = fetch_torchvision(name, Path(raw_root), mirror)
        elif name == "digits":
            data = make_digits()
        elif name == "ones":
            data = make_ones(**params["data"]["ones"])
        elif name == "ones_bnn":
            data = make_ones_sets(**params["data"]["ones_bnn"])
        else:
            raise DataError(f"unknown dataset {name!r}; known: {', '.join(config.DATASETS)}")
        out = paths.processed(name, out_dir)
        files.write_torch(out, data)  # byte-identical from run to run
        sizes = {k: tuple(v.shape) for k, v in data.items() if isinstance(v, torch.Tensor)}
        if "sets" in data:
            sizes = {f"d={k}": tuple(v["train_x"].shape) for k, v in data["sets"].items()}
        print(f"data: wrote {out.name} {sizes}", flush=True)
        written.append(out)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="The data stage: prepare every dataset")
    parser.add_argument("--only", nargs="*", choices=config.DATASETS,
                        default=list(config.DATASETS))
    args = parser.parse_args(argv)
    try:
        write_datasets(config.load(import_modules=False), only=tuple(args.only))
    except (DataError, config.ParamsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
