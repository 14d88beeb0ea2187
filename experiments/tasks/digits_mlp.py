"""An MLP on scikit-learn's DIGITS (experiment 2: ``mlp``, ``mlp_sweep``).

64 inputs (pixels / 16) -> 64 activation units -> 10 logits, cross-entropy.  The 80/20
split is scikit-learn's ``train_test_split(test_size=0.2, random_state=0)``.
"""

from experiments.tasks import models

prepare = models.prepare_digits
build_model = models.build_mlp
loss_fn = models.cross_entropy
n_correct = models.n_correct_argmax
