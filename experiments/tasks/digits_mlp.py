"""Experiment 2: an MLP on scikit-learn's DIGITS.

64 inputs (pixels / 16) -> 64 Logistic units -> 10 logits, cross-entropy; the
standard Logistic / d(Logistic) against Logistic / 1.  The 80/20 split is
scikit-learn's ``train_test_split(test_size=0.2, random_state=0)``.  Data and
model come from ``experiments.models``, shared with ``mlp_sweep``.
"""

from experiments import models

prepare = models.prepare_digits
build_model = models.build_mlp
loss_fn = models.cross_entropy
n_correct = models.n_correct_argmax
