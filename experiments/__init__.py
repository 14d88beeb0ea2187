"""The workbench: the experiments of Troiano et al. (2025) as DVC stages.

Core (imported by the stages, never the other way round):

* ``paths`` - the one place that builds a path (``Layout(root)`` for another root);
* ``params`` - loads and validates ``params.yaml`` and expands each experiment's ``grids``
  into configurations with structured fields (axes, baseline, claims);
* ``rules`` - from a configuration to freegrad (rule block, stochasticity, diagnostics);
* ``loop`` - the training core, one seed or seeds stacked (``stacked``: the wide model);
* ``run`` - ``Run`` (a run as a value) and ``train_one(experiment, spec, config, seed, ...)``;
* ``tables`` - the cells of every table and the one number formatter;
* ``tracking`` (MLflow), ``io`` (atomic writes, CSV);
* ``tasks/`` - the model and data code an experiment names with ``task``.

Stages (``python -m experiments.<stage>``): ``data``, ``train`` (``train@<experiment>``),
``report``, ``claims``, ``figures``.  The paper's stages are the ``paper`` package.
"""
