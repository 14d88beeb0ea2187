"""A rule under DistributedDataParallel: 2 CPU processes, gloo, no network.

    python libs/freegrad/examples/ddp.py
"""

import tempfile

import freegrad as fg
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn


def worker(rank, world, init_file):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), fg.Activation("ReLU"), nn.Linear(8, 1))
    # params-scope rules act on each rank's gradient, before the all-reduce
    fg.attach_param_hooks(model)
    model = nn.parallel.DistributedDataParallel(model)
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(rank))
    with fg.use("rectangular", scope="activations"), \
            fg.use("clip_norm", {"max_norm": 1.0}, scope="params"):
        model(x).square().mean().backward()
    grad = next(model.parameters()).grad
    print(f"rank {rank}: all-reduced grad norm of the first layer {grad.norm():.5f}")
    dist.destroy_process_group()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(worker, args=(2, f"{tmp}/init"), nprocs=2, join=True)
