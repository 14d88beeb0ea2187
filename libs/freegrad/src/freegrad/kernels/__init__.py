"""Kernels of mask rules: compiled single-pass loops, with PyTorch ops as the fallback.

A mask rule keeps ``mask(x)`` at forward (1 byte per element) and returns
``grad · mask`` at backward. Built-in masks are :class:`Interval` s. On the CPU in
eager mode both steps run as the C++ loops of ``csrc/mask_kernels.cpp``:

* forward: when the activation is a built-in forward with a native op (Logistic,
  Tanh, ReLU, ReLU6, HardTanh, LeakyReLU, SiLU, ELU, Softplus, Heaviside, Sign),
  ``fused_forward`` computes y and the mask in one sweep over x (y bit for bit the
  native op's); otherwise the mask is one pass of its own (``compute_mask``);
* backward: ``grad · mask`` in one pass into a fresh gradient (``apply_mask``; also
  when the gradient is one number expanded, as for ``y.sum()``), or the gradient scaled
  outside the mask (d(LeakyReLU)) in one pass; the jamming rules' ``(grad · u) · mask``
  with u drawn in the loop, as ``torch.rand`` draws it (``jam``).

Where PyTorch needs two comparisons, an ``&`` and a conversion, each a pass with a
temporary. The loops are compiled with ``torch.utils.cpp_extension`` (a C++
compiler and ninja; 20-50 s) into ``$TORCH_EXTENSIONS_DIR/freegrad_mask_kernels_<hash>``
(default ~/.cache/torch_extensions), the hash covering the source, the flags, torch's
version and the Python ABI, so checkouts and venvs do not rebuild each other's build;
once built, a folder is loaded directly. ``python -m freegrad.kernels build`` builds
at install time; ``ensure_built()`` builds (or loads) them before anything is timed;
a build at first use says so on stderr. ``native_status()`` says whether they are in use.

Elsewhere - no compiler, ``FREEGRAD_NATIVE=0``, float16/bfloat16, GPUs,
torch.func / torch.compile tracing, a backward that builds a graph - the same
values come from PyTorch ops: on large contiguous CPU tensors chunk by chunk (the
temporaries stay in cache, the mask converts as uint8, which is vectorised), else
as plain expressions. Both paths give identical y, masks and gradients (tested).
"""

from __future__ import annotations

import contextlib
import functools
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
from collections.abc import Callable
from pathlib import Path

import torch

from ..interval import Interval  # the rule API's; still importable from here, as before

CHUNK = 1 << 18  # elements: a 1 MiB float32 temporary stays in L2; fewer Python steps
MIN_CHUNKED = 4 * CHUNK
NATIVE_DTYPES = (torch.float32, torch.float64)
SOURCE = Path(__file__).resolve().parents[1] / "csrc" / "mask_kernels.cpp"


_build_lock = threading.Lock()
_native: dict = {}  # "module": the loaded extension or None; "status": why
BUILD_MESSAGE = "freegrad: building compiled mask kernels (one-off, ~20-50 s) in {dir}"
_MARKER = "freegrad-built.json"  # written once the extension in a build folder has loaded


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


def _flags() -> tuple[list[str], list[str]]:
    """(cflags, ldflags) of the build: -O3 and, where torch has it, OpenMP (at::parallel_for)."""
    openmp = ["-fopenmp"] if torch.backends.openmp.is_available() else []
    return ["-O3", *openmp], openmp


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


def _load_or_build():
    """(module, directory, built_now, seconds); raises if the build or the load fails.

    A folder whose marker says it built and loaded before is imported directly, without
    torch's build step (which would rebuild when, say, only the venv's include paths
    differ). The source is copied into the folder, so every checkout compiles the same
    path and ninja sees nothing new.
    """
    start = time.perf_counter()
    source = SOURCE.read_bytes()  # a missing source fails here, with its path
    cflags, ldflags = _flags()
    name = build_name(source, cflags, ldflags)
    directory = build_dir(name)
    library, marker = _library(directory, name), directory / _MARKER
    if marker.is_file() and library.is_file():
        with contextlib.suppress(ImportError, OSError):
            return _import(name, library), directory, False, time.perf_counter() - start
    directory.mkdir(parents=True, exist_ok=True)
    with _file_lock(directory / ".freegrad.lock"):
        if marker.is_file() and library.is_file():  # another process built it meanwhile
            with contextlib.suppress(ImportError, OSError):
                return _import(name, library), directory, False, time.perf_counter() - start
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
        seconds = time.perf_counter() - start
        marker.write_text(json.dumps({
            "name": name, "torch": torch.__version__, "python": sys.version.split()[0],
            "cflags": cflags, "ldflags": ldflags, "build_seconds": round(seconds, 1),
        }) + "\n")
        return module, directory, True, seconds


def _build():
    if os.environ.get("FREEGRAD_NATIVE", "1") == "0":
        return None, "off (FREEGRAD_NATIVE=0)"
    try:
        with _quiet_cpp_extension_logger():
            module, _, _, _ = _load_or_build()
    except Exception as exc:  # no compiler, no ninja, unsupported platform
        reason = _reason(exc)
        warnings.warn(
            f"freegrad: compiled mask kernels unavailable ({reason}); mask rules use PyTorch "
            "ops instead (same values, slower). FREEGRAD_NATIVE=0 skips the build.",
            RuntimeWarning, stacklevel=4,
        )
        return None, f"unavailable: {reason}"
    return module, f"in use ({module.__file__})"


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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


def toolchain_missing() -> str | None:
    """Why no build can be attempted here (no C++ compiler, no ninja), or None."""
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        return f"no C++ compiler ({compiler!r} not found)"
    if shutil.which("ninja") is None and importlib.util.find_spec("ninja") is None:
        return "no ninja (pip install ninja)"
    return None


def _eager_cpu(*tensors: torch.Tensor) -> bool:
    """Plain CPU tensors, not traced by torch.compile or wrapped by torch.func."""
    return (
        all(t.device.type == "cpu" for t in tensors)
        and not torch.compiler.is_compiling()
        and not any(torch._C._functorch.is_functorch_wrapped_tensor(t) for t in tensors)
    )


def _use_native(data: torch.Tensor, *others: torch.Tensor) -> bool:
    """Eager CPU float32/float64 tensors outside any graph being recorded, laid out alike in
    one dense block (contiguous, or channels_last as convolutions on the CPU prefer)."""
    return (
        data.dtype in NATIVE_DTYPES
        and not torch.is_grad_enabled()
        and _eager_cpu(data, *others)  # first: a vmap-batched tensor cannot say its layout
        and (data.is_contiguous() or data.is_contiguous(memory_format=torch.channels_last))
        and all(t.shape == data.shape and t.stride() == data.stride() for t in others)
        and native() is not None
    )


def _one_number(grad: torch.Tensor, mask: torch.Tensor) -> bool:
    """A float32/float64 ``grad`` that is one number expanded to ``mask``'s shape (every stride
    0), with a dense ``mask``: the compiled kernels write ``value · mask`` in one pass."""
    return (
        grad.dtype in NATIVE_DTYPES
        and grad.dim() > 0
        and not torch.is_grad_enabled()
        and _eager_cpu(grad, mask)
        and not any(grad.stride())
        and grad.shape == mask.shape
        and (mask.is_contiguous() or mask.is_contiguous(memory_format=torch.channels_last))
        and native() is not None
    )


def _chunkable(data: torch.Tensor, *others: torch.Tensor) -> bool:
    """Large same-shape contiguous eager CPU tensors, outside any graph being recorded."""
    return (
        data.numel() >= MIN_CHUNKED
        and not torch.is_grad_enabled()
        and all(t.is_contiguous() for t in (data, *others))
        and all(t.shape == data.shape for t in others)
        and _eager_cpu(data, *others)
    )


def _chunks(n: int):
    for start in range(0, n, CHUNK):
        yield slice(start, min(start + CHUNK, n))


def compute_mask(mask_fn: Callable[..., torch.Tensor], x: torch.Tensor, params: dict
                 ) -> torch.Tensor:
    """``mask_fn(x, **params)``, a boolean tensor shaped like ``x``."""
    fused = _take_pending(mask_fn, x, params)
    if fused is not None:
        return fused
    with torch.no_grad():
        if isinstance(mask_fn, Interval) and _use_native(x):
            return native().interval_mask(x, *mask_fn.bounds(**params), *mask_fn.closed)
        if not _chunkable(x):
            return mask_fn(x, **params)
        out = torch.empty(x.shape, dtype=torch.bool)
        flat_x, flat_out = x.view(-1), out.view(-1)
        for part in _chunks(flat_x.numel()):
            flat_out[part] = mask_fn(flat_x[part], **params)
        return out


def apply_mask(grad: torch.Tensor, mask: torch.Tensor, outside: float = 0.0) -> torch.Tensor:
    """``grad * mask`` for a boolean ``mask`` of the same shape; with ``outside`` ≠ 0,
    ``torch.where(mask, grad, grad * outside)`` (the gradient scaled, not zeroed, outside)."""
    if _use_native(grad, mask):
        return native().masked_grad(grad, mask, outside)
    if _one_number(grad, mask):  # e.g. the gradient of y.sum(): one value expanded
        return native().masked_scalar(torch.as_strided(grad, (), ()), mask, outside)
    if outside != 0:
        return torch.where(mask, grad, grad * outside)
    if not _chunkable(grad, mask):
        # On the CPU, float * uint8 is 2-3x faster than float * bool (measured); same values.
        return grad * (mask.view(torch.uint8) if _eager_cpu(grad, mask) else mask)
    out = torch.empty_like(grad)
    # uint8 -> float converts vectorised; bool -> float does not.
    flat_grad, flat_mask, flat_out = grad.view(-1), mask.view(-1).view(torch.uint8), out.view(-1)
    buffer = torch.empty(CHUNK, dtype=grad.dtype)
    for part in _chunks(flat_grad.numel()):
        chunk = buffer[: part.stop - part.start]
        chunk.copy_(flat_mask[part])
        torch.mul(flat_grad[part], chunk, out=flat_out[part])
    return out


def jam(grad: torch.Tensor, mask: torch.Tensor | None,
        generator: torch.Generator | None) -> torch.Tensor | None:
    """``(grad · u) · mask`` (``grad · u`` without a mask), u ~ U[0, 1) drawn as
    ``torch.rand(grad.shape, generator=generator)`` draws it (torch's global generator for None),
    in one compiled loop: the same numbers in the same order, the generator left in the same
    state, and no tensor for u. None where the compiled kernels cannot: the caller's PyTorch ops.
    """
    others = () if mask is None else (mask,)
    if (generator is None or generator.device.type == "cpu") and _use_native(grad, *others):
        return native().jammed_grad(grad, mask, generator)
    return None


# --- fused forward: F(x) and an Interval mask of x in one sweep -----------------------------

# forward name -> (op code of csrc/mask_kernels.cpp, its two scalar params from the forward's)
FUSED: dict[str, tuple[int, Callable[[dict], tuple[float, float]]]] = {
    "Logistic": (0, lambda p: (0.0, 0.0)),
    "Tanh": (1, lambda p: (0.0, 0.0)),
    "ReLU": (2, lambda p: (0.0, 0.0)),
    "SiLU": (3, lambda p: (0.0, 0.0)),
    "HardTanh": (4, lambda p: (p["min_val"], p["max_val"])),
    "ReLU6": (4, lambda p: (0.0, 6.0)),
    "LeakyReLU": (5, lambda p: (p["negative_slope"], 0.0)),
    "ELU": (6, lambda p: (p["alpha"], 0.0)),
    "Softplus": (7, lambda p: (p["beta"], p["threshold"])),
    "Heaviside": (8, lambda p: (0.0, 0.0)),
    "Sign": (9, lambda p: (0.0, 0.0)),
}
# Not fused: Linear (its forward is a view: nothing to compute) and GELU (ATen picks its thread
# ranges from its own grain size, so blocks could not follow its scalar tails).
_pending = threading.local()


@functools.cache
def _forwards() -> dict:
    from ..forwards import FORWARDS  # forwards imports nothing of freegrad: no cycle

    return FORWARDS


def _fusable(fn: Callable, forward: str, bound) -> tuple | None:
    """The kernel arguments (op, p0, p1, lo, hi, lo_closed, hi_closed) when ``fn`` is the
    built-in forward ``forward`` and ``bound`` a rule that keeps an :class:`Interval` of x."""
    entry = FUSED.get(forward)
    mask = getattr(getattr(bound, "rule", None), "mask", None)
    if entry is None or getattr(bound, "saves", None) != "mask" or not isinstance(mask, Interval):
        return None
    spec = _forwards()[forward]
    base, given = (fn.func, fn.keywords) if isinstance(fn, functools.partial) else (fn, {})
    if base is not spec.fn or (isinstance(fn, functools.partial) and fn.args):
        return None
    op, scalars = entry
    params = spec.defaults | given
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in params.values()):
        return None
    return (op, *map(float, scalars(params)), *map(float, mask.bounds(**bound.params)),
            *mask.closed)


def fused_forward(x: torch.Tensor, fn: Callable, forward: str, bound) -> torch.Tensor:
    """``fn(x)``; where the compiled kernels can, the rule's mask of x is computed in the same
    sweep and handed to the :func:`compute_mask` call that asks for it next (the rule's
    residual, right after the forward), bit for bit the mask computed apart."""
    args = _fusable(fn, forward, bound)
    if args is None or not _use_native(x):
        return fn(x)
    y, mask = native().fused_interval_forward(x, *args)
    _pending.value = (x, x._version, bound.rule.mask, bound.params, mask)
    return y


def _take_pending(mask_fn, x: torch.Tensor, params: dict) -> torch.Tensor | None:
    """The mask :func:`fused_forward` computed for exactly this call, or None (and forgotten)."""
    pending = getattr(_pending, "value", None)
    if pending is None:
        return None
    _pending.value = None
    px, version, pfn, pparams, mask = pending
    same = px is x and version == x._version and pfn is mask_fn and pparams == params
    return mask if same else None
