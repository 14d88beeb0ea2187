"""Models trained with rules save and load; rules under DistributedDataParallel."""

import io

import freegrad as fg
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn


def _model():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(4, 8), fg.Activation("LeakyReLU", negative_slope=0.1), nn.Linear(8, 2)
    )
    fg.attach_param_hooks(model)
    return model


def _grads(model, x, **use_kw):
    model.zero_grad()
    with fg.use("scale", {"s": 3.0}, scope="params", **use_kw):
        model(x).sum().backward()
    return [p.grad.clone() for p in model.parameters()]


def _roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=False)


def test_state_dict_roundtrip_and_reattached_hooks():
    model, x = _model(), torch.randn(5, 4)
    fresh = nn.Sequential(
        nn.Linear(4, 8), fg.Activation("LeakyReLU", negative_slope=0.1), nn.Linear(8, 2)
    )
    fresh.load_state_dict(_roundtrip(model.state_dict()))
    fg.attach_param_hooks(fresh)  # the one documented call after loading a state_dict
    for a, b in zip(_grads(model, x), _grads(fresh, x), strict=True):
        torch.testing.assert_close(a, b)


def test_whole_model_save_keeps_activation_and_param_hooks():
    model, x = _model(), torch.randn(5, 4)
    loaded = _roundtrip(model)
    assert loaded[1].params == {"negative_slope": 0.1}
    for a, b in zip(_grads(model, x), _grads(loaded, x), strict=True):
        torch.testing.assert_close(a, b)
    fg.attach_param_hooks(loaded)  # idempotent: still applied once
    for a, b in zip(_grads(model, x), _grads(loaded, x), strict=True):
        torch.testing.assert_close(a, b)


def _train(model, opt, gen, steps, x):
    for _ in range(steps):
        opt.zero_grad()
        with fg.use("noise", {"sigma": 0.5}, scope="activations", generator=gen):
            model(x).square().mean().backward()
        opt.step()


def test_seeded_noise_resumes_its_stream_after_reload():
    x = torch.randn(16, 4)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    _train(model, opt, torch.Generator().manual_seed(3), 4, x)

    first = _model()
    opt1 = torch.optim.SGD(first.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(3)
    _train(first, opt1, gen, 2, x)
    ckpt = _roundtrip(
        {"model": first.state_dict(), "opt": opt1.state_dict(), "rng": gen.get_state()}
    )

    resumed = _model()
    opt2 = torch.optim.SGD(resumed.parameters(), lr=0.1)
    resumed.load_state_dict(ckpt["model"])
    opt2.load_state_dict(ckpt["opt"])
    gen2 = torch.Generator()
    gen2.set_state(ckpt["rng"])
    _train(resumed, opt2, gen2, 2, x)
    for a, b in zip(model.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


# --- DistributedDataParallel, 2 CPU processes (gloo) -------------------------------------------

X = torch.randn(8, 4, generator=torch.Generator().manual_seed(1))
RULES = {
    "activations": ("rectangular", {"a": -0.3, "b": 0.3}, "activations"),
    "params": ("clip_norm", {"max_norm": 0.05}, "params"),
}


def _loss(model, x):
    return model(x).square().mean()


def _ddp_worker(rank, world, init_file, case, out_file):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model = nn.parallel.DistributedDataParallel(_model())
        rule, params, scope = RULES[case]
        shard = X.chunk(world)[rank]
        with fg.use(rule, params, scope=scope):
            _loss(model, shard).backward()
        if rank == 0:
            torch.save([p.grad for p in model.parameters()], out_file)
    finally:
        dist.destroy_process_group()


def _ddp_grads(tmp_path, case):
    out = tmp_path / f"{case}.pt"
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / f"init-{case}"), case, str(out)),
             nprocs=2, join=True)
    return torch.load(out)


def _single(rule, params, scope, x):
    model = _model()
    with fg.use(rule, params, scope=scope):
        _loss(model, x).backward()
    return [p.grad for p in model.parameters()]


def test_ddp_activation_rule_equals_one_process_on_the_same_data(tmp_path):
    ddp = _ddp_grads(tmp_path, "activations")
    single = _single(*RULES["activations"], X)
    for a, b in zip(ddp, single, strict=True):
        torch.testing.assert_close(a, b)


def test_ddp_param_rule_acts_before_the_all_reduce(tmp_path):
    ddp = _ddp_grads(tmp_path, "params")
    per_rank = [_single(*RULES["params"], shard) for shard in X.chunk(2)]
    # each rank clips its own gradient, then the mean
    before = [(a + b) / 2 for a, b in zip(*per_rank, strict=True)]
    for a, b in zip(ddp, before, strict=True):
        torch.testing.assert_close(a, b)
    after = _single(*RULES["params"], X)  # clipping the all-reduced gradient would give this
    assert not all(torch.allclose(a, b) for a, b in zip(ddp, after, strict=True))
