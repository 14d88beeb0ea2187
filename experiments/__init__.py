"""The workbench: the experiments of Troiano et al. (2025) as DVC stages.

Packages, each importing only those above it in this list:

* ``results`` - every path (``paths``, root-anchored), atomic writes (``files``), the data
  stage's files read back (``datasets``) and what a train stage writes (``records``);
* ``config`` - ``params.yaml`` loaded, checked and expanded into configurations;
* ``tasks`` - each task's model and data preparation;
* ``training`` - the ``train@<experiment>`` stage (``python -m experiments.training``);
* ``analysis`` - what is made of the results without training: the ``report``, ``claims``
  and ``figures`` stages.

Modules: ``data`` (the ``data`` stage) and ``same_results`` (do two commits train to the
same bytes?).  The train stages depend on ``config``, ``training``, ``tasks``, ``results`` and
``libs/freegrad/src`` only (``dvc.yaml``).  The paper's stages are the ``paper`` package.
"""
