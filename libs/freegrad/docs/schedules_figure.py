"""The guide's figure of schedules, blends and a learnable width: docs/schedules.png.

    python libs/freegrad/docs/schedules_figure.py      (matplotlib; writes next to this file)

Every backward drawn is the library's own: a forward under the block at that step, then its
backward.
"""

from pathlib import Path

import freegrad as fg
import matplotlib
import torch
from freegrad import schedules as S

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend)

OUT = Path(__file__).with_name("schedules.png")
T = 800  # the steps over which the schedules move
STEPS = (0, 200, 400, 800)
X = torch.linspace(-2.5, 2.5, 1001, dtype=torch.float64)


def backward_at_steps(rule, params=None) -> dict[int, torch.Tensor]:
    """The Logistic layer's backward (g = 1) under ``rule`` at each of STEPS."""
    act, block, out = fg.Activation("Logistic"), fg.use(rule, params, scope="activations"), {}
    with block:
        for t in STEPS:
            block.clock.t = t
            x = X.clone().requires_grad_(True)
            act(x).sum().backward()
            out[t] = x.grad
    return out


def schedules_panel(ax):
    t = list(range(0, 1001, 5))
    for label, s in [("constant(0.5)", S.constant(0.5)), (f"linear(1, 0.25, {T})",
                     S.linear(1.0, 0.25, T)), (f"cosine(1, 0.25, {T})", S.cosine(1.0, 0.25, T)),
                     ("piecewise([300, 600], [1, 0.5, 0.25])",
                      S.piecewise([300, 600], [1.0, 0.5, 0.25]))]:
        ax.plot(t, [s(i) for i in t], label=label)
    ax.set(title="schedules: value at step t", xlabel="optimiser step t", ylabel="value")
    ax.legend(fontsize=7)


def curves_panel(ax, curves, title):
    for t, g in curves.items():
        ax.plot(X, g, label=f"step t = {t}")
    ax.set(title=title, xlabel="x", ylabel="backward for g = 1")
    ax.legend(fontsize=7)


def primitive_panel(ax):
    p = fg.get("triangular").primitive
    for w, color in ((0.5, "C0"), (1.0, "C1"), (2.0, "C2")):
        ax.plot(X, p.value(X, width=w), color=color, label=f"P, width = {w}")
        ax.plot(X, p.grads["width"][0](X, width=w), "--", color=color,
                label=f"∂P/∂width, width = {w}")
    ax.set(title="learnable width: triangular's primitive P = ∫₀ˣ rule", xlabel="x")
    ax.legend(fontsize=6)


def main() -> None:
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    schedules_panel(axes[0, 0])
    window = {"a": S.linear(-1.0, -0.25, T), "b": S.linear(1.0, 0.25, T)}
    curves_panel(axes[0, 1], backward_at_steps("rectangular", window),
                 f"rectangular, a and b linear over {T} steps (Logistic layer)")
    curves_panel(axes[1, 0], backward_at_steps(fg.blend("rectangular", mix=S.linear(0, 1, T))),
                 f"blend: mix · rectangular + (1 − mix) · σ', mix 0 → 1 over {T} steps")
    primitive_panel(axes[1, 1])
    fig.tight_layout()
    fig.savefig(OUT, dpi=100, metadata={"Software": None})
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
