"""How much does a rule turn the gradient? Cosine similarity per layer while training.

    python libs/freegrad/examples/diagnostics.py
"""

import freegrad as fg
import torch
from freegrad.diagnostics import GradientDiagnostics
from torch import nn

torch.manual_seed(0)
x = torch.randn(256, 20)
y = (x[:, :5].sum(1) > 0).long()
model = nn.Sequential(nn.Linear(20, 32), fg.Activation("Logistic"), nn.Linear(32, 32),
                      fg.Activation("Logistic"), nn.Linear(32, 2))
opt = torch.optim.SGD(model.parameters(), lr=0.5)


def loss_fn():
    return nn.functional.cross_entropy(model(x), y)


diag = GradientDiagnostics(model, "d(Linear)", every=20,
                           log=lambda m, step: print(f"step {step:3d}: cosine " + ", ".join(
                               f"{k.split('/')[1]}={v:.3f}" for k, v in m.items()
                               if k.startswith("cosine/") and k.endswith("weight"))))
for step in range(100):
    diag(step, loss_fn)
    opt.zero_grad()
    with fg.use("d(Linear)", scope="activations"):
        loss = loss_fn()
    loss.backward()
    opt.step()
print(f"final loss {loss.item():.4f}")
