"""The rule is bound when the forward runs (activations and parameter hooks alike)."""

import threading

import freegrad as fg
import pytest
import torch

X = torch.tensor([-2.0, -0.4, 0.1, 0.45, 0.7, 3.0], dtype=torch.float64)
RECT = ((X >= -0.5) & (X <= 0.5)).double()


def sig_prime(x):
    s = torch.sigmoid(x)
    return s * (1 - s)


def changed_nothing():
    """A block in which no forward bound its rule warns when it ends."""
    return pytest.warns(UserWarning, match="changed nothing")


def leaf():
    return X.clone().requires_grad_(True)


def test_backward_after_the_block_uses_the_rule_of_the_forward():
    x = leaf()
    with fg.use("rectangular", scope="activations"):
        y = fg.Activation("Logistic")(x)
    y.sum().backward()
    torch.testing.assert_close(x.grad, RECT)


def test_forward_outside_any_block_gets_the_true_derivative_even_if_backward_is_inside():
    x = leaf()
    y = fg.Activation("Logistic")(x)
    with changed_nothing(), fg.use("d(Linear)"):
        y.sum().backward()  # and the block says so
    torch.testing.assert_close(x.grad, sig_prime(X))


def test_retain_graph_applies_the_bound_rule_twice():
    x = leaf()
    with fg.use("rectangular", scope="activations"):
        y = fg.Activation("Logistic")(x).sum()
    y.backward(retain_graph=True)
    with changed_nothing(), fg.use("scale", {"s": 100.0}):
        y.backward()
    torch.testing.assert_close(x.grad, 2 * RECT)


def test_backward_on_another_thread_uses_the_forward_rule():
    x = leaf()
    with fg.use("rectangular", scope="activations"):
        y = fg.Activation("Logistic")(x).sum()
    t = threading.Thread(target=y.backward)
    t.start()
    t.join()
    torch.testing.assert_close(x.grad, RECT)


def test_nested_blocks_inner_wins_and_outer_resumes():
    act = fg.Activation("Logistic")
    x1, x2, x3 = leaf(), leaf(), leaf()
    with fg.use("d(Linear)"):
        y1 = act(x1)
        with fg.use("rectangular"):
            y2 = act(x2)
        y3 = act(x3)
    (y1.sum() + y2.sum() + y3.sum()).backward()
    torch.testing.assert_close(x1.grad, torch.ones_like(X))
    torch.testing.assert_close(x2.grad, RECT)
    torch.testing.assert_close(x3.grad, torch.ones_like(X))


def test_inner_block_of_another_scope_does_not_hide_the_outer_activation_rule():
    x = leaf()
    rect = fg.use("rectangular", scope="activations")
    scale = fg.use("scale", {"s": 2.0}, scope="params")
    with pytest.warns(UserWarning, match=r"'scale', scope='params'\) changed nothing"):
        with rect, scale:  # no parameter hooks here: the params block binds nothing
            fg.Activation("Logistic")(x).sum().backward()
    torch.testing.assert_close(x.grad, RECT)


def test_params_only_scope_leaves_activations_alone():
    x = leaf()
    with changed_nothing(), fg.use("d(Linear)", scope="params"):
        fg.Activation("Logistic")(x).sum().backward()
    torch.testing.assert_close(x.grad, sig_prime(X))


def test_eight_threads_each_under_their_own_rule_see_no_cross_talk():
    scales = [float(i + 1) for i in range(8)]
    results, barrier = {}, threading.Barrier(8)

    def work(s):
        act = fg.Activation("Logistic")
        with fg.use("scale", {"s": s}, scope="activations"):
            barrier.wait()  # all eight blocks are open at once
            for _ in range(20):
                x = leaf()
                act(x).sum().backward()
                results.setdefault(s, []).append(x.grad)

    threads = [threading.Thread(target=work, args=(s,)) for s in scales]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in scales:
        assert len(results[s]) == 20
        for grad in results[s]:
            torch.testing.assert_close(grad, torch.full_like(X, s))


def _model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    fg.attach_param_hooks(model)
    return model


def _param_grads(model, inp):
    model.zero_grad()
    model(inp).sum().backward()
    return [p.grad.clone() for p in model.parameters()]


def test_param_rule_is_bound_at_forward_and_applied_after_the_block():
    inp = torch.randn(5, 3)
    model = _model()
    plain = _param_grads(model, inp)
    model.zero_grad()
    with fg.use("scale", {"s": 3.0}, scope="params"):
        out = model(inp).sum()
    with changed_nothing():
        with fg.use("scale", {"s": 100.0}, scope="params"):
            out.backward()  # the rule at backward time is ignored
    for p, g in zip(model.parameters(), plain, strict=True):
        torch.testing.assert_close(p.grad, 3 * g)


def test_param_forward_outside_block_gets_plain_gradient():
    inp = torch.randn(5, 3)
    model = _model()
    plain = _param_grads(model, inp)
    model.zero_grad()
    out = model(inp).sum()
    with changed_nothing(), fg.use("scale", {"s": 3.0}, scope="params"):
        out.backward()
    for p, g in zip(model.parameters(), plain, strict=True):
        torch.testing.assert_close(p.grad, g)


def test_param_hooks_restore_parameters_and_are_idempotent():
    model = _model()
    fg.attach_param_hooks(model)  # second call adds nothing
    inp = torch.randn(2, 3)
    plain = _param_grads(model, inp)
    with fg.use("scale", {"s": 2.0}, scope="params"):
        scaled = _param_grads(model, inp)
    for g, h in zip(plain, scaled, strict=True):
        torch.testing.assert_close(h, 2 * g)  # applied once, not twice
    assert all(isinstance(p, torch.nn.Parameter) for p in model.parameters())
    assert all(type(v) is torch.nn.Parameter for v in model[0]._parameters.values())


def test_param_hooks_remove():
    model = torch.nn.Linear(3, 1)
    handles = fg.attach_param_hooks(model)
    handles.remove()
    inp = torch.randn(2, 3)
    plain = _param_grads(model, inp)
    with changed_nothing(), fg.use("scale", {"s": 2.0}, scope="params"):
        torch.testing.assert_close(_param_grads(model, inp)[0], plain[0])


def test_mask_rule_on_params_is_a_clear_error_at_forward():
    model = _model()
    with fg.use("rectangular", scope="params"):
        try:
            model(torch.randn(1, 3))
        except ValueError as e:
            assert "rectangular" in str(e) and "activations" in str(e)
        else:
            raise AssertionError("a mask rule on parameter gradients must be an error")
    # the failed forward left the parameters in place
    assert all(type(v) is torch.nn.Parameter for v in model[0]._parameters.values())


def test_exact_block_restores_true_derivatives_inside_a_rule_block():
    x1, x2 = leaf(), leaf()
    act = fg.Activation("Logistic")
    with fg.use("rectangular", scope="activations"):
        with fg.exact():
            y1 = act(x1)
        y2 = act(x2)
    (y1.sum() + y2.sum()).backward()
    torch.testing.assert_close(x1.grad, sig_prime(X))
    torch.testing.assert_close(x2.grad, RECT)


def test_exact_limited_to_a_scope_keeps_the_other():
    model = _model()
    inp = torch.randn(5, 3)
    plain = _param_grads(model, inp)
    with fg.use("scale", {"s": 2.0}, scope="params"), fg.exact(scope="activations"):
        scaled = _param_grads(model, inp)
    for a, b in zip(plain, scaled, strict=True):
        torch.testing.assert_close(b, 2 * a)
