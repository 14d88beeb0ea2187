"""LeNet-5 on MNIST or Fashion-MNIST (experiments 3 and 4: ``lenet``, ``cnn``,
``cnn_fashion``); the dataset is the experiment's ``dataset``, the activation and
backward rule the configuration's."""

from experiments.tasks import models

prepare = models.prepare_images
build_model = models.build_lenet5
loss_fn = models.cross_entropy
n_correct = models.n_correct_argmax
