"""Experiment 5: gradient jamming in LeNet-5 on MNIST (``cnn_fashion``: Fashion-MNIST).

ReLU, Linear and Logistic forwards, each with its true derivative and with the
jamming rules ``full_jam``, ``positive_jam`` and ``rectangular_jam`` on every
activation.  One implementation for both datasets, in ``experiments.models``; the
dataset is the experiment's ``dataset`` in params.yaml.
"""

from experiments import models

prepare = models.prepare_images
build_model = models.build_lenet5
loss_fn = models.cross_entropy
n_correct = models.n_correct_argmax
