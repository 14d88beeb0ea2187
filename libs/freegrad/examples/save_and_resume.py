"""Checkpoint a model trained with a noisy rule and resume it exactly.

    python libs/freegrad/examples/save_and_resume.py
"""

import io

import freegrad as fg
import torch
from torch import nn


def make():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), fg.Activation("Tanh"), nn.Linear(16, 1))
    fg.attach_param_hooks(model)  # re-attach after building a fresh model: the one call to remember
    return model, torch.optim.SGD(model.parameters(), lr=0.1)


def train(model, opt, gen, steps, x):
    for _ in range(steps):
        opt.zero_grad()
        with fg.use("noise", {"sigma": 0.2}, scope="activations", generator=gen):
            model(x).square().mean().backward()
        opt.step()


x = torch.randn(32, 8)
straight, opt = make()
train(straight, opt, torch.Generator().manual_seed(1), 10, x)

model, opt = make()
gen = torch.Generator().manual_seed(1)
train(model, opt, gen, 5, x)
buf = io.BytesIO()
torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "rng": gen.get_state()}, buf)

buf.seek(0)
ckpt = torch.load(buf)
model, opt = make()
model.load_state_dict(ckpt["model"])
opt.load_state_dict(ckpt["opt"])
gen = torch.Generator()
gen.set_state(ckpt["rng"])  # the noise stream continues where it stopped
train(model, opt, gen, 5, x)
same = all(
    torch.equal(a, b)
    for a, b in zip(straight.parameters(), model.parameters(), strict=True)
)
print(f"resumed run identical to the uninterrupted one: {same}")
