"""Build and load of the compiled mask kernels (``csrc/mask_kernels.cpp``).

The loops are compiled with ``torch.utils.cpp_extension`` (a C++ compiler and ninja; 20-50 s)
into ``$TORCH_EXTENSIONS_DIR/freegrad_mask_kernels_<hash>`` (default ~/.cache/torch_extensions),
the hash covering the source, the flags (the op codes of :mod:`.ops` among them), torch's
version and the Python ABI, so checkouts and venvs do not rebuild each other's build; once
built, a folder is loaded directly. A module whose op codes are not :mod:`.ops`' is refused.
:func:`native` builds or loads them on first use (a build says so on stderr), and falls back
to None with a warning where that fails; :func:`build_now` does it at once and raises instead
(``python -m freegrad.kernels build``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import platform
import shutil
import sys
import sysconfig
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch

from . import ops

SOURCE = Path(__file__).resolve().parents[1] / "csrc" / "mask_kernels.cpp"
BUILD_MESSAGE = "freegrad: building compiled mask kernels (one-off, ~20-50 s) in {dir}"
_MARKER = "freegrad-built.json"  # written once the extension in a build folder has loaded
_build_lock = threading.Lock()
_native: dict = {}  # "module": the loaded extension or None; "status": why


class BuildError(RuntimeError):
    """The compiled kernels could not be built or loaded; the message is the reason."""


@dataclass(frozen=True)
class Loaded:
    """A loaded extension, where it lives, whether it was compiled just now, and in how long."""

    module: ModuleType
    directory: Path
    built: bool
    seconds: float


@contextlib.contextmanager
def _ninja_on_path():
    """torch runs ``ninja`` from PATH; pip's ninja lives beside the interpreter, which a
    venv's python run by its path does not put on PATH."""
    path = os.environ.get("PATH", "")
    if shutil.which("ninja") is None and importlib.util.find_spec("ninja") is not None:
        import ninja

        os.environ["PATH"] = os.pathsep.join([ninja.BIN_DIR, path])
    try:
        yield
    finally:
        os.environ["PATH"] = path


def build_flags() -> tuple[list[str], list[str]]:
    """(cflags, ldflags) of the build: -O3, where torch has it OpenMP (at::parallel_for), and
    the op codes of :mod:`.ops` as ``-D`` defines."""
    openmp = ["-fopenmp"] if torch.backends.openmp.is_available() else []
    return ["-O3", *openmp, *ops.defines()], openmp


def build_name(source: bytes, cflags: list[str], ldflags: list[str]) -> str:
    """``freegrad_mask_kernels_<hash>``: the hash of what determines the binary.

    The C++ source, the compile and link flags, torch's version (its headers and ABI) and
    the Python ABI (the extension suffix, e.g. ``.cpython-311-x86_64-linux-gnu.so``), so
    checkouts and venvs that differ in any of them build side by side instead of
    rebuilding one shared folder in turn, and those that agree share one build.
    """
    digest = hashlib.sha256()
    for part in (
        source,
        "\0".join(cflags).encode(),
        "\0".join(ldflags).encode(),
        torch.__version__.encode(),
        str(getattr(torch.version, "git_version", "")).encode(),
        str(sysconfig.get_config_var("EXT_SUFFIX") or sys.implementation.cache_tag).encode(),
        platform.machine().encode(),
    ):
        digest.update(len(part).to_bytes(8, "little") + part)
    return f"freegrad_mask_kernels_{digest.hexdigest()[:12]}"


def build_dir(name: str) -> Path:
    """Where ``name`` is built: ``$TORCH_EXTENSIONS_DIR/<name>``
    (default ~/.cache/torch_extensions)."""
    from torch.utils import cpp_extension

    root = os.environ.get("TORCH_EXTENSIONS_DIR") or cpp_extension.get_default_build_root()
    return Path(root) / name


def _library(directory: Path, name: str) -> Path:
    return directory / f"{name}{'.pyd' if sys.platform == 'win32' else '.so'}"


def _import(name: str, library: Path):
    spec = importlib.util.spec_from_file_location(name, library)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def _file_lock(path: Path):
    """One process at a time builds a folder (others wait, then load its result)."""
    try:
        import fcntl
    except ImportError:  # Windows: torch's own lock in the folder still serialises the build
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _quiet_cpp_extension_logger():
    # Importing cpp_extension logs a CUDA_HOME notice that says nothing about CPU kernels.
    logger = logging.getLogger("torch.utils.cpp_extension")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _load_built(name: str, directory: Path) -> ModuleType | None:
    """The extension of a folder whose marker says it built and loaded before, else None;
    refused (RuntimeError) if its op codes are not :mod:`.ops`'."""
    library = _library(directory, name)
    if not ((directory / _MARKER).is_file() and library.is_file()):
        return None
    try:
        module = _import(name, library)
    except (ImportError, OSError):
        return None
    ops.check(module)
    return module


def _compile(name: str, directory: Path, source: bytes, cflags: list[str], ldflags: list[str]):
    """Build ``name`` in ``directory`` (the source copied there, so every checkout compiles the
    same path and ninja sees nothing new) and load it; refused if its op codes are not ours."""
    print(BUILD_MESSAGE.format(dir=directory), file=sys.stderr, flush=True)
    copy = directory / SOURCE.name
    if not copy.is_file() or copy.read_bytes() != source:
        partial = copy.with_suffix(".tmp")
        partial.write_bytes(source)
        os.replace(partial, copy)
    from torch.utils import cpp_extension

    with _ninja_on_path():
        module = cpp_extension.load(
            name, [str(copy)], extra_cflags=cflags, extra_ldflags=ldflags,
            build_directory=str(directory),
        )
    ops.check(module)
    return module


def _load_or_build() -> Loaded:
    """The extension, loaded from its folder or built there now; raises if that fails.

    A folder whose marker says it built and loaded before is imported directly, without
    torch's build step (which would rebuild when, say, only the venv's include paths
    differ). Either way a module whose op codes are not :mod:`.ops`' is refused.
    """
    start = time.perf_counter()
    source = SOURCE.read_bytes()  # a missing source fails here, with its path
    cflags, ldflags = build_flags()
    name = build_name(source, cflags, ldflags)
    directory = build_dir(name)
    module = _load_built(name, directory)
    if module is not None:
        return Loaded(module, directory, False, time.perf_counter() - start)
    directory.mkdir(parents=True, exist_ok=True)
    with _file_lock(directory / ".freegrad.lock"):
        module = _load_built(name, directory)  # another process built it meanwhile
        if module is not None:
            return Loaded(module, directory, False, time.perf_counter() - start)
        module = _compile(name, directory, source, cflags, ldflags)
        seconds = time.perf_counter() - start
        (directory / _MARKER).write_text(json.dumps({
            "name": name, "torch": torch.__version__, "python": sys.version.split()[0],
            "cflags": cflags, "ldflags": ldflags, "build_seconds": round(seconds, 1),
        }) + "\n")
        return Loaded(module, directory, True, seconds)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _build():
    if os.environ.get("FREEGRAD_NATIVE", "1") == "0":
        return None, "off (FREEGRAD_NATIVE=0)"
    try:
        with _quiet_cpp_extension_logger():
            module = _load_or_build().module
    except Exception as exc:  # no compiler, no ninja, unsupported platform
        reason = _reason(exc)
        warnings.warn(
            f"freegrad: compiled mask kernels unavailable ({reason}); mask rules use PyTorch "
            "ops instead (same values, slower). FREEGRAD_NATIVE=0 skips the build.",
            RuntimeWarning, stacklevel=4,
        )
        return None, f"unavailable: {reason}"
    return module, f"in use ({module.__file__})"


def native():
    """The compiled kernels, built or loaded on first call; None where they cannot be."""
    if "module" not in _native:
        with _build_lock:
            if "module" not in _native:
                _native["module"], _native["status"] = _build()
    return _native["module"]


def native_status() -> str:
    """Whether mask rules run the compiled kernels, and if not, why."""
    native()
    return _native["status"]


def ensure_built() -> str:
    """Build (once per source, flags, torch and Python; else load) the compiled kernels now.

    Call it before anything is timed: the first use of a mask rule would otherwise build
    them there (~20-50 s, announced on stderr). Returns :func:`native_status`.
    ``python -m freegrad.kernels build`` does the same from a shell (e.g. at install time).
    """
    return native_status()


def build_now() -> Loaded:
    """Build (or load) the compiled kernels now and put them in use, whatever
    ``FREEGRAD_NATIVE`` says; a :class:`BuildError` with the reason where that fails (where
    :func:`ensure_built` warns and falls back)."""
    try:
        with _quiet_cpp_extension_logger():
            loaded = _load_or_build()
    except Exception as exc:  # the reason is the message
        raise BuildError(_reason(exc)) from exc
    with _build_lock:
        _native.update(module=loaded.module, status=f"in use ({loaded.module.__file__})")
    return loaded


def toolchain_missing() -> str | None:
    """Why no build can be attempted here (no C++ compiler, no ninja), or None."""
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        return f"no C++ compiler ({compiler!r} not found)"
    if shutil.which("ninja") is None and importlib.util.find_spec("ninja") is None:
        return "no ninja (pip install ninja)"
    return None
