"""The ``train@<experiment>`` stage: ``python -m experiments.training <experiment>``.

* ``stage`` - the stage's entry: every unit of the experiment, then its outputs;
* ``units`` - a unit of work (``Job``), trained here or on a worker; the run cache
  (``runcache``) and where units execute (``executor``: local or Dask);
* ``run`` - one (configuration, seed) as one MLflow run (``tracking``), returned as a
  ``results.records.Run``;
* ``loop`` - the training itself, one seed or seeds stacked (``stacked``);
* ``binding`` - from a configuration to freegrad (its rule block, diagnostics);
* ``inputs`` - the data a unit trains on; ``environment`` - device and determinism.
"""
