"""``python -m experiments.config``: check params.yaml, or show an experiment's configurations."""

from __future__ import annotations

import argparse
import sys

from experiments.analysis.comparisons import show
from experiments.config import PROFILES, ParamsError, load, resolve


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Validate params.yaml")
    parser.add_argument("--check", metavar="EXPERIMENT", help="also require this experiment")
    parser.add_argument("--show", metavar="EXPERIMENT",
                        help="print the experiment's expanded configurations")
    parser.add_argument("--profile", choices=PROFILES, help="with --show (default: params')")
    args = parser.parse_args(argv)
    try:
        params = load()
        if args.check:
            resolve(params, args.check)
        if args.show:
            print(show(params, args.show, args.profile), end="")
            return 0
    except ParamsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print("params.yaml is valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())

