"""Experiment 2, sweep: the DIGITS MLP of ``mlp`` over batch size x learning rate.

Same data, model and loss (``experiments.models``); each configuration sets its
own ``batch_size`` and ``lr``: ``bs<B>_lr<LR>_<standard|constant>``.
"""

from experiments import models

prepare = models.prepare_digits
build_model = models.build_mlp
loss_fn = models.cross_entropy
n_correct = models.n_correct_argmax
