"""Task discovery: ``experiments/tasks/<task>.py`` is a task's data, model, loss and score."""

from __future__ import annotations

import importlib
import importlib.util

from experiments.config.schema import ParamsError
from experiments.results import paths

TASKS = tuple(sorted(p.stem for p in paths.TASKS.glob("*.py")
                     if not p.stem.startswith("_") and p.stem != "models"))


def task_module(task: str, where: str = "task"):
    """The module ``experiments.tasks.<task>``: a task's data, model, loss and score."""
    if not isinstance(task, str) or importlib.util.find_spec(f"experiments.tasks.{task}") is None:
        raise ParamsError(f"{where}: unknown task {task!r}; accepted: " + ", ".join(TASKS))
    return importlib.import_module(f"experiments.tasks.{task}")

