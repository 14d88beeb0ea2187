"""Experiments of the FreeGrad reproduction, run as DVC stages.

Modules: ``paths`` (the one place that knows where files live), ``params``
(loading and validating ``params.yaml``), ``data`` (the ``data`` stage and
in-memory loaders), ``train`` (the generic training loop, ``train@<exp>``),
``tracking`` (MLflow), ``report`` and ``figures`` (the stages that turn
metrics and curves into tables and plots), and one module per experiment
(``suc`` ...), which only says how to build its model and score it.
"""
