"""Experiment 5 on Fashion-MNIST: the jamming grid of ``experiments.cnn``, same
implementation (``experiments.models``), dataset ``fashion_mnist`` in params.yaml."""

from experiments import models

prepare = models.prepare_images
build_model = models.build_lenet5
loss_fn = models.cross_entropy
n_correct = models.n_correct_argmax
