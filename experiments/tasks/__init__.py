"""Tasks: the model and data code an experiment names with ``task`` in params.yaml.

A task module gives the training loop four things: ``prepare(data, device)`` (the
dataset on the device), ``build_model(spec, cfg, meta)`` (the model of one
configuration), ``loss_fn(output, target)`` and ``n_correct(output, target)``;
optionally ``config_data(data, cfg)`` when configurations train on different data
(``binary_unit``: one set per input size d) and ``EXTRA_KEYS`` / ``EXTRA_CONFIG_KEYS``
(params keys it accepts).  Models and pieces several tasks share are in ``models``.

| task | experiments | model |
|---|---|---|
| ``single_unit`` | ``suc`` | Linear(d->1) + activation, BCE |
| ``digits_mlp`` | ``mlp``, ``mlp_sweep`` | 64 -> 64 -> 10 MLP on DIGITS, cross-entropy |
| ``lenet5`` | ``lenet``, ``cnn``, ``cnn_fashion`` | LeNet-5 on MNIST / Fashion-MNIST |
| ``binary_unit`` | ``bnn`` | Linear(d->1) + activation, MSE, one "Ones" set per d |
"""
