"""Rules on an existing torchvision model, limited to some layers.

    python libs/freegrad/examples/convert_and_target.py
"""

import freegrad as fg
import torch
import torchvision

torch.manual_seed(0)
model = torchvision.models.resnet18(weights=None, num_classes=10)
_, replaced = fg.convert(model)  # nn.ReLU -> fg.Activation("ReLU"): same forward, same gradients
print(f"converted {len(replaced)} activation modules: {list(replaced)[:4]} ...")

x, y = torch.randn(4, 3, 64, 64), torch.randint(0, 10, (4,))
loss_fn = torch.nn.CrossEntropyLoss()

# A rectangular derivative in the last stage only, a constant one in the stem,
# true derivatives elsewhere.
with fg.use("rectangular", {"a": -1.0, "b": 1.0}, scope="activations",
            layers=fg.select(model, "layer4.*")), \
        fg.use("d(Linear)", scope="activations", layers=fg.select(model, "relu")):
    loss = loss_fn(model(x), y)
loss.backward()
print(f"loss {loss.item():.4f}; grad norm of conv1: {model.conv1.weight.grad.norm():.4f}")
