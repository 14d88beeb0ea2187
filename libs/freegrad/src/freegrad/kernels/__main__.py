"""``python -m freegrad.kernels build``: build (or load) the compiled mask kernels now.

Prints where they were built or loaded from and how long it took; exits 1 with the
reason when a C++ compiler and ninja exist but the build fails, 0 when there is
nothing to build with (mask rules then use PyTorch ops) or ``FREEGRAD_NATIVE=0``.
"""

from __future__ import annotations

import argparse
import os
import sys

from freegrad import kernels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m freegrad.kernels",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "status"],
                        help="build: build or load now; status: say whether they are in use")
    args = parser.parse_args(argv)
    if args.command == "status":
        print(kernels.native_status())
        return 0
    if os.environ.get("FREEGRAD_NATIVE", "1") == "0":
        print("freegrad: compiled mask kernels off (FREEGRAD_NATIVE=0); nothing built")
        return 0
    missing = kernels.toolchain_missing()
    if missing:
        print(f"freegrad: compiled mask kernels not built: {missing}; mask rules use PyTorch ops "
              "(same values, slower)")
        return 0
    try:
        loaded = kernels.build_now()
    except kernels.BuildError as exc:
        print(f"freegrad: building the compiled mask kernels failed: {exc}", file=sys.stderr)
        return 1
    verb = "built" if loaded.built else "loaded (already built)"
    print(f"freegrad: compiled mask kernels {verb} in {loaded.seconds:.1f} s: "
          f"{loaded.module.__file__}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
