"""LeNet-5 on MNIST or Fashion-MNIST (experiments 3 and 4: ``lenet``, ``cnn``,
``cnn_fashion``); the dataset is the experiment's ``dataset``, the activation and
backward rule the configuration's.

``fast_fit`` trains a run with ``wide_lenet``'s C++ step (the same run as the training loop's
to float rounding, about twice as fast on one CPU thread); the loop uses it wherever
``fast_fit_supports`` the configuration (``experiments.training.loop.fit``)."""

from __future__ import annotations

from experiments.tasks import models, wide_lenet

prepare = models.prepare_images
build_model = models.build_lenet5
loss_fn = models.cross_entropy
n_correct = models.n_correct_argmax


def fast_fit_supports(cfg: dict) -> bool:
    """Whether ``wide_lenet`` trains this configuration (its forward, rule and scope) and
    its C++ step is built here. A layer feedback rule (``scope: feedback``) is not: the C++
    step's backward sends the error through W, so those runs train on the autograd loop."""
    if cfg.get("scope") == "feedback" or wide_lenet.extension() is None:
        return False
    try:
        wide_lenet.check_members([wide_lenet.Member.from_config(cfg, 0)])
    except ValueError:
        return False
    return True


def _diagnosed(spec: dict, cfg: dict, data: dict, diagnostics):
    """A ``before_step`` hook that measures ``diagnostics`` on an ``nn`` copy of the run's
    LeNet-5, loaded with the step's parameters at each step it measures (every ``every``)."""
    model = build_model(spec, cfg, data["meta"])
    diag = diagnostics(model, None)  # the C++ step trains no scheduled parameter
    x, y = data["train_x"], data["train_y"]

    def before_step(_, step: int, idx, params) -> None:
        if step % diag.every == 0:
            model.load_state_dict(wide_lenet.state_dict(params))
            diag(step, lambda: loss_fn(model(x[idx]), y[idx]))
    return before_step


def fast_fit(spec: dict, cfg: dict, seed: int, data: dict, on_epoch=None, diagnostics=None):
    """(rows, where it diverged or None) of one run, as ``loop.fit`` would train it;
    ``diagnostics(model, clock)`` as ``loop.fit`` takes it (measured on the C++ step's weights)."""
    (result,) = wide_lenet.train(
        [wide_lenet.Member.from_config(cfg, seed)], data,
        batch_size=cfg.get("batch_size", spec["batch_size"]), epochs=spec["epochs"],
        lr=cfg.get("lr", spec["lr"]), momentum=spec["momentum"],
        weight_decay=spec["weight_decay"],
        on_epoch=None if on_epoch is None else lambda _, row: on_epoch(row),
        before_step=None if diagnostics is None else _diagnosed(spec, cfg, data, diagnostics))
    d = result.diverged
    return result.rows, None if d is None else (d.epoch, d.step, d.loss)
