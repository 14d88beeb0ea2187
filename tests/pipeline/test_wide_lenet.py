"""experiments/tasks/wide_lenet.py: members trained together equal their solo runs.

Solo run: the path of experiments.loop (``models.build_lenet5`` after ``torch.manual_seed``,
``binding.rule_context``, ``loop.make_optimizer``, ``torch.randperm`` batches), here on small
random data of MNIST's shape, so the tests need no dataset. The C++ step is built on first use
(~30-60 s, once per machine); where it cannot be, the native tests skip.
"""

from __future__ import annotations

import math

import pytest
import torch

from experiments.tasks import lenet5, models
from experiments.tasks import wide_lenet as W
from experiments.training import binding, loop

N_TRAIN, N_TEST = 256, 128


@pytest.fixture(scope="module")
def ext():
    module = W.extension()
    if module is None:
        pytest.skip(f"wide_lenet C++ step {W.status()}")
    return module


@pytest.fixture(scope="module")
def data():
    """Random images with labels a fixed linear function of them gives (so training moves)."""
    g = torch.Generator().manual_seed(1234)
    x = torch.rand(N_TRAIN + N_TEST, 1, 28, 28, generator=g)
    w = torch.randn(784, 10, generator=g)
    y = (x.reshape(len(x), -1) @ w).argmax(1)
    return {"train_x": x[:N_TRAIN], "train_y": y[:N_TRAIN], "test_x": x[N_TRAIN:],
            "test_y": y[N_TRAIN:], "meta": {"classes": 10}}


def spec(batch_size=64, lr=0.05, momentum=0.9, weight_decay=0.0, epochs=1):
    return {"batch_size": batch_size, "lr": lr, "momentum": momentum, "optimizer": "sgd",
            "weight_decay": weight_decay, "epochs": epochs}


def cfg(forward, backward, **rule_params):
    return {"forward": forward, "backward": backward, "rule_params": rule_params,
            "forward_params": {}, "scope": "activations"}


def solo(c: dict, sp: dict, data: dict, seed: int) -> dict:
    """One epoch of ``c`` alone, as experiments.loop trains it; its state dict."""
    torch.manual_seed(seed)
    model = lenet5.build_model(sp, c, data["meta"])
    opt = loop.make_optimizer(sp, model, loop.setting(sp, c, "lr"))
    order = torch.Generator().manual_seed(seed)
    x, y, bs = data["train_x"], data["train_y"], sp["batch_size"]
    with binding.rule_context(c, seed):
        model.train()
        perm = torch.randperm(len(x), generator=order)
        for i in range(0, len(x), bs):
            idx = perm[i:i + bs]
            loss = models.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return {k: v.detach() for k, v in model.state_dict().items()}


def wide(members, data, sp, **kw):
    return W.train(members, data, batch_size=sp["batch_size"], epochs=sp["epochs"],
                   lr=sp["lr"], momentum=sp["momentum"], weight_decay=sp["weight_decay"],
                   **kw)


def strip(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def max_diff(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def rel_diff(a: dict, b: dict) -> float:
    """Largest parameter difference over the largest parameter (the rules that replace the
    gradient's magnitude, noise and sign jamming, grow the weights to 1e2-1e4 in a few steps)."""
    return max_diff(a, b) / max(float(v.abs().max()) for v in b.values())


# --- initialisation and parameters ---------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 7])
def test_init_is_lenet5s(seed):
    torch.manual_seed(seed)
    model = lenet5.build_model(spec(), cfg("ReLU", "d(ReLU)"), {"classes": 10})
    state = W.state_dict(W.init_params(seed))
    assert state.keys() == model.state_dict().keys()
    for k, v in model.state_dict().items():
        assert torch.equal(state[k], v), k  # exactly
    model.load_state_dict(state)


# --- random numbers ----------------------------------------------------------------------------


def test_rand_is_torch_rand_exactly(ext):
    for seed in (0, 5):
        a, b = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        for n in (1, 7, 623, 624, 625, 84 * 3, 4704 * 2, 100_003):
            assert torch.equal(torch.rand(n, generator=a), ext.rand(b, n)), n
            assert torch.equal(a.get_state(), b.get_state()), n


def test_randn_is_torch_randn_to_rounding(ext):
    worst = 0.0
    for seed in (0, 5):
        a, b = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        for n in (16, 17, 84 * 3, 120 * 5 + 1, 1600 * 2, 4704 * 3, 100_003):
            ref, ours = torch.randn(n, generator=a), ext.randn(b, n)
            worst = max(worst, float((ref - ours).abs().max()))
            assert torch.equal(a.get_state(), b.get_state()), n  # the same uniforms used
    assert worst <= 5e-7, f"largest difference from torch.randn: {worst:.2e}"


# --- members equal their solo runs -----------------------------------------------------------

CASES = {  # the lenet and cnn grids' kinds of configuration
    "logistic_true": cfg("Logistic", "d(Logistic)"),
    "logistic_constant": cfg("Logistic", "d(Linear)"),
    "logistic_rectangular": cfg("Logistic", "rectangular", a=-0.5, b=0.5),
    "logistic_triangular": cfg("Logistic", "triangular", width=1.0),
    "logistic_noise": cfg("Logistic", "noise", sigma=0.1),
    "logistic_noise_mult": cfg("Logistic", "noise", sigma=0.5, mode="multiplicative"),
    "relu_true": cfg("ReLU", "d(ReLU)"),
    "relu_full_jam": cfg("ReLU", "full_jam"),
    "relu_positive_jam_sign": cfg("ReLU", "positive_jam", mode="sign"),
    "relu_rectangular_jam_grad": cfg("ReLU", "rectangular_jam", a=-5.0, b=5.0, test="grad"),
    "linear_true": cfg("Linear", "d(Linear)"),
    "linear_rectangular_jam": cfg("Linear", "rectangular_jam", a=-5.0, b=5.0),
    "tanh_true": cfg("Tanh", "d(Tanh)"),
}
TOL = 1e-5  # float rounding after 4 SGD steps, relative (measured: 4e-8 to 2e-7; additive
# noise and sign jamming, whose weights grow fastest: 1e-6 to 4e-6)


@pytest.mark.parametrize("momentum, weight_decay", [(0.9, 0.0), (0.0, 1e-3)])
def test_members_equal_solo_runs(ext, data, momentum, weight_decay):
    """All cases in one wide run (mixed forwards and rules, one lr per member): after one
    epoch (4 steps of 64) each member's parameters are its solo run's to float rounding."""
    sp = spec(momentum=momentum, weight_decay=weight_decay)
    names = list(CASES)
    lrs = [0.02 if i % 2 else 0.05 for i in range(len(names))]
    members = [W.Member.from_config(CASES[n], seed=i, lr=lr, name=n)
               for i, (n, lr) in enumerate(zip(names, lrs, strict=True))]
    results = wide(members, data, sp)
    diffs = {}
    for i, (name, res) in enumerate(zip(names, results, strict=True)):
        assert res.diverged is None, name
        ref = solo(CASES[name], {**sp, "lr": lrs[i]}, data, seed=i)
        diffs[name] = rel_diff(res.state_dict(), ref)
    worst = max(diffs.values())
    text = ", ".join(f"{k} {v:.1e}" for k, v in diffs.items())
    assert worst <= TOL, f"largest relative parameter difference from solo {worst:.1e}: {text}"
    start = W.state_dict(W.init_params(0))  # and the runs did move
    assert rel_diff(results[0].state_dict(), start) > 100 * TOL


@pytest.mark.parametrize("batch_size", [96, 256])
def test_batches_above_64_equal_solo_runs(ext, data, batch_size):
    """A batch goes through the network 64 images at a time (96: 64 + 32; 256: 4 x 64), the
    gradient summed over them: the same update as the batch at once, to rounding."""
    sp = spec(batch_size=batch_size)
    names = ("logistic_true", "logistic_rectangular", "logistic_noise_mult", "relu_full_jam")
    members = [W.Member.from_config(CASES[n], seed=i, name=n) for i, n in enumerate(names)]
    diffs = {n: rel_diff(r.state_dict(), solo(CASES[n], sp, data, seed=i))
             for i, (n, r) in enumerate(zip(names, wide(members, data, sp), strict=True))}
    worst = max(diffs.values())
    assert worst <= TOL, f"largest relative parameter difference from solo {worst:.1e}: {diffs}"


def test_rows_equal_loop_fit(ext, data):
    """The rows (epoch 0 = initial evaluation) are experiments.loop.fit's to rounding."""
    sp = spec(epochs=2)
    for name in ("logistic_rectangular", "relu_full_jam", "logistic_noise"):
        c = CASES[name]
        ref = loop.fit(lenet5, sp, c, 3, data, torch.device("cpu"), engine="autograd")
        (res,) = wide([W.Member.from_config(c, seed=3)], data, sp)
        assert [r["epoch"] for r in res.rows] == [r["epoch"] for r in ref] == [0, 1, 2]
        for a, b in zip(res.rows, ref, strict=True):
            for k in ("train_loss", "test_loss"):
                assert abs(a[k] - b[k]) <= 1e-5, (name, k, a, b)
            for k in ("train_acc", "test_acc"):  # a count of 1 / 256 may flip on rounding
                assert abs(a[k] - b[k]) <= 1 / N_TRAIN + 1e-12, (name, k, a, b)


def test_seeds_and_orders_are_each_members_own(ext, data):
    c = CASES["relu_true"]
    a, b, b_other_order = wide([W.Member.from_config(c, 0), W.Member.from_config(c, 1),
                                W.Member(seed=1, forward="ReLU", order_seed=2)], data, spec())
    assert not torch.equal(a.params, b.params)
    assert not torch.equal(b.params, b_other_order.params)
    assert rel_diff(b_other_order.state_dict(), b.state_dict()) > 100 * TOL


# --- determinism and independence ----------------------------------------------------------


def test_reruns_are_byte_identical(ext, data):
    members = [W.Member.from_config(CASES[n], seed=i) for i, n in
               enumerate(("logistic_noise", "relu_full_jam", "logistic_rectangular"))]
    first, second = wide(members, data, spec(epochs=2)), wide(members, data, spec(epochs=2))
    for a, b in zip(first, second, strict=True):
        assert strip(a.rows) == strip(b.rows)
        assert torch.equal(a.params, b.params)


def test_a_diverging_member_leaves_the_others_as_without_it(ext, data):
    ok = [W.Member.from_config(CASES["relu_full_jam"], 0),
          W.Member.from_config(CASES["logistic_true"], 1)]
    bad = W.Member.from_config(CASES["relu_true"], 2, lr=1e6)
    alone = wide(ok, data, spec(epochs=2))
    mixed = wide([ok[0], bad, ok[1]], data, spec(epochs=2))
    for a, b in zip(alone, (mixed[0], mixed[2]), strict=True):
        assert b.diverged is None
        assert strip(a.rows) == strip(b.rows)  # byte for byte
        assert torch.equal(a.params, b.params)
    d = mixed[1].diverged
    assert d is not None and d.epoch == 1 and 1 <= d.step <= N_TRAIN // 64
    assert not math.isfinite(d.loss)
    assert [r["epoch"] for r in mixed[1].rows] == [0]  # the rows so far
    # as the loop reports it
    with pytest.raises(loop.Diverged) as info:
        loop.fit(lenet5, {**spec(epochs=2), "lr": 1e6}, CASES["relu_true"], 2, data, "cpu",
                 engine="autograd")
    assert (info.value.epoch, info.value.step) == (d.epoch, d.step)


# --- the pipeline's use of it, and what is not supported ------------------------------------


def test_the_loop_trains_lenet_with_it_and_falls_back_without_it(data, monkeypatch):
    """loop.fit's "auto" engine is this step where it supports the run (the rows equal the
    autograd loop's to rounding); without the compiled step it is the autograd loop, exactly."""
    name, sp = "relu_positive_jam_sign", spec()
    solo = loop.fit(lenet5, sp, CASES[name], 1, data, "cpu", engine="autograd")
    fast = loop.fit(lenet5, sp, CASES[name], 1, data, "cpu")
    assert strip(fast) != strip(solo)  # another computation: other rounding
    for a, b in zip(strip(fast), strip(solo), strict=True):
        assert a == pytest.approx(b, rel=1e-4, abs=1e-6)
    monkeypatch.setattr(W, "extension", lambda: None)
    assert strip(loop.fit(lenet5, sp, CASES[name], 1, data, "cpu")) == strip(solo)


@pytest.mark.parametrize("member, message", [
    (W.Member(0, forward="GELU"), "forward 'GELU'"),
    (W.Member(0, forward="ReLU", backward="clip_norm"), "rule 'clip_norm'"),
    (W.Member(0, forward="ReLU", backward="rectangular", scope="params"), "scope 'params'"),
    (W.Member(0, forward="ReLU", backward="rectangular", rule_params={"a": 1, "b": 0}), "must be"),
])
def test_unsupported_members_are_refused(member, message):
    with pytest.raises(ValueError, match=message):
        W.check_members([member])


def test_a_diagnosed_run_measures_the_same_directions_on_the_c_step(data):
    """Gradient diagnostics of a run trained by the C++ step, measured on an nn copy of its
    weights, agree with the autograd loop's to rounding (cosine, sign agreement, norm ratio)."""
    from freegrad.diagnostics import GradientDiagnostics

    name, sp = "relu_full_jam", spec()
    cfg, made = CASES[name], {}

    def factory(engine):
        def make(model, clock):
            made[engine] = GradientDiagnostics(model, cfg["backward"],
                                               dict(cfg["rule_params"]) or None,
                                               "activations", every=3, seed=0)
            return made[engine]
        return make

    for engine in ("auto", "autograd"):
        loop.fit(lenet5, sp, cfg, 0, data, "cpu", diagnostics=factory(engine), engine=engine)
    fast, slow = made["auto"].history, made["autograd"].history
    assert [s for s, _ in fast] == [s for s, _ in slow] and len(fast) >= 2
    for (_, a), (_, b) in zip(fast, slow, strict=True):
        for layer in b:
            assert a[layer] == pytest.approx(b[layer], rel=1e-3, abs=1e-4), layer
