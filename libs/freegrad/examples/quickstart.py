"""Quickstart: the same forward, four backwards, and a rule of your own.

    python libs/freegrad/examples/quickstart.py
"""

import freegrad as fg
import torch

x = torch.linspace(-2, 2, 9, requires_grad=True)
act = fg.Activation("Logistic")

for rule, params in [(None, None), ("d(Linear)", None), ("rectangular", {"a": -0.5, "b": 0.5}),
                     ("triangular", {"width": 1.0})]:
    x.grad = None
    if rule is None:
        act(x).sum().backward()  # no rule: the native sigmoid and its true derivative
    else:
        with fg.use(rule, params, scope="activations"):
            y = act(x)  # the rule is bound here, when the forward runs ...
        y.sum().backward()  # ... and applied here, after the block
    print(f"{rule or 'true derivative':>16}: {[round(v, 3) for v in x.grad.tolist()]}")


@fg.register("cubic_window", saves="input", formula="g · max(0, 1 − |x|³)",
             source="quickstart example")
def cubic_window(ctx, grad_out, input, power=3.0):
    return grad_out * (1 - input.abs() ** power).clamp_min(0)


clipped_noise = fg.compose(("noise", {"sigma": 0.05}), ("clip_norm", {"max_norm": 1.0}))
for rule in ["cubic_window", clipped_noise]:
    x.grad = None
    with fg.use(rule, scope="activations", seed=0):
        act(x).sum().backward()
    print(f"{getattr(rule, 'name', rule):>16}: {[round(v, 3) for v in x.grad.tolist()]}")
