"""The pipeline's settings: ``params.yaml`` loaded, checked and expanded.

* ``schema`` - every accepted key and its type, ``ParamsError`` and the checks' helpers;
* ``grids`` - an experiment's ``grids`` expanded into configurations;
* ``checks`` - ``validate``: the whole file, before any training starts;
* ``tasks`` - ``task_module``: the task code an experiment names;
* ``experiment`` - ``load``, ``resolve`` and ``Experiment``, one resolved experiment.

    python -m experiments.config                 # check the file
    python -m experiments.config --show lenet    # the expanded configurations

A task module (``experiments/tasks/<task>.py``) may accept extra experiment keys
(``EXTRA_KEYS``: key -> type) and configuration keys (``EXTRA_CONFIG_KEYS``).
"""

from experiments.config.checks import validate
from experiments.config.experiment import Experiment, load, resolve
from experiments.config.grids import expand, setting_of
from experiments.config.schema import (
    DATASETS,
    DEFAULT_SCOPE,
    PROFILES,
    STRUCTURE,
    TRUE_DERIVATIVE,
    ParamsError,
)
from experiments.config.tasks import TASKS, task_module

__all__ = ["DATASETS", "DEFAULT_SCOPE", "PROFILES", "STRUCTURE", "TASKS",
           "TRUE_DERIVATIVE", "Experiment", "ParamsError", "expand", "load", "resolve",
           "setting_of", "task_module", "validate"]
