"""The C++ step (``step.cpp``): built once per source, flags, torch and CPU with
``torch.utils.cpp_extension`` (~30-60 s), then imported directly."""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import sys
from pathlib import Path

import torch

SOURCE = Path(__file__).with_name("step.cpp")

_EXT: dict = {}
_FLAGS = ["-O3", "-march=native", "-ffp-contract=off"]


def _cpu_id() -> str:
    """What -march=native compiles for: the CPU's flags (a build is not shared across CPUs)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    return platform.processor() or platform.machine()


def build_name() -> str:
    digest = hashlib.sha256()
    for part in (SOURCE.read_bytes(), " ".join(_FLAGS).encode(), torch.__version__.encode(),
                 str(getattr(torch.version, "git_version", "")).encode(),
                 sys.implementation.cache_tag.encode(), platform.machine().encode(),
                 _cpu_id().encode()):
        digest.update(len(part).to_bytes(8, "little") + part)
    return f"wide_lenet_{digest.hexdigest()[:12]}"


def _import(name: str, library: Path):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, library)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def extension():
    """The compiled step (built on first use, ~30 s, then loaded), or None where it cannot be
    built; ``status()`` says why."""
    if "module" not in _EXT:
        if os.environ.get("WIDE_LENET_NATIVE", "1") == "0":
            _EXT["module"], _EXT["status"] = None, "off (WIDE_LENET_NATIVE=0)"
            return None
        try:
            import logging

            from torch.utils import cpp_extension

            logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
            name = build_name()
            root = Path(os.environ.get("TORCH_EXTENSIONS_DIR")
                        or cpp_extension.get_default_build_root()) / name
            library, marker = root / f"{name}.so", root / "wide-lenet-built"
            module = None
            if marker.is_file() and library.is_file():  # built and loaded before: import it
                with contextlib.suppress(ImportError, OSError):
                    module = _import(name, library)
            if module is None:
                root.mkdir(parents=True, exist_ok=True)
                print(f"wide_lenet: building the C++ step (one-off, ~30-60 s) in {root}",
                      file=sys.stderr, flush=True)
                module = cpp_extension.load(name, [str(SOURCE)], extra_cflags=_FLAGS,
                                            build_directory=str(root), verbose=False)
                marker.write_text(f"{name} {torch.__version__}\n")
            _EXT["module"], _EXT["status"] = module, f"in use ({root})"
        except Exception as exc:  # no compiler, no ninja, no BLAS symbol
            text = str(exc).strip().splitlines()
            _EXT["module"], _EXT["status"] = None, f"unavailable: {text[0] if text else exc!r}"
    return _EXT["module"]


def status() -> str:
    extension()
    return _EXT["status"]
