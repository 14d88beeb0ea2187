"""Seeds trained stacked (``experiments.stacked``) against one seed at a time.

For one configuration of each small experiment (full-profile seeds, batch size and data;
``--epochs`` epochs), times ``train.fit`` once per seed against ``stacked.fit_seeds`` for all
seeds; variants alternate over ``--rounds`` rounds and the speed-up is the median over rounds
of (one-at-a-time time / stacked time) in the same round.  One CPU thread, as the stages run.

    python benchmarks/bench_stacked.py [--rounds 3] [--epochs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from experiments import bnn, mlp, mlp_sweep, stacked, suc, train  # noqa: E402
from experiments import data as D  # noqa: E402
from experiments import params as P  # noqa: E402

CASES = [("suc", suc, "constant"), ("mlp", mlp, "constant"),
         ("mlp_sweep", mlp_sweep, "bs16_lr0.05_constant"),
         ("bnn", bnn, "step_rectangular_d32")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    params = P.load()
    print(f"{'experiment / configuration':<42}{'seeds':>6}{'one at a time':>15}{'stacked':>10}"
          f"{'speed-up':>10}")
    for name, module, cname in CASES:
        spec = P.resolve(params, name, "full")
        spec["epochs"] = args.epochs
        cfg = spec["configs"][cname]
        raw = D.load(spec["dataset"])
        data = module.prepare(raw, "cpu")
        data = train.configuration_data(module, data, cfg)
        seeds = spec["seeds"]
        one, st = [], []
        for r in range(args.rounds):
            for variant in ((0, 1) if r % 2 == 0 else (1, 0)):
                t0 = time.perf_counter()
                if variant == 0:
                    for s in seeds:
                        train.fit(module, spec, cfg, s, data, "cpu")
                    one.append(time.perf_counter() - t0)
                else:
                    stacked.fit_seeds(module, spec, cfg, seeds, data, "cpu")
                    st.append(time.perf_counter() - t0)
        ratio = statistics.median(a / b for a, b in zip(one, st, strict=True))
        print(f"{name + ' / ' + cname:<42}{len(seeds):>6}{statistics.median(one):>14.2f}s"
              f"{statistics.median(st):>9.2f}s{ratio:>9.2f}x")


if __name__ == "__main__":
    main()
