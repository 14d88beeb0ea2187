"""Experiment 3: LeNet-5 with Logistic activations on MNIST.

The true derivative against the constant, rectangular, triangular and noisy
(noise on the constant rule) backward rules, on every activation.  Data and
model come from ``experiments.models`` (shared with the jamming experiments).
"""

from experiments import models

prepare = models.prepare_images
build_model = models.build_lenet5
loss_fn = models.cross_entropy
n_correct = models.n_correct_argmax
