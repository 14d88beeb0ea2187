"""FreeGrad: keep a layer's forward pass, choose its backward.

>>> import torch, freegrad as fg
>>> act = fg.Activation("Logistic")
>>> x = torch.randn(8, requires_grad=True)
>>> with fg.use("rectangular", params={"a": -0.5, "b": 0.5}, scope="activations"):
...     act(x).sum().backward()

The rule in force when a forward runs is the one its backward applies.
"""

from . import diagnostics, feedback, kernels, rules, schedules, transforms  # noqa: F401  (transforms: rules)
from .blend import Blend
from .context import RuleContext, exact, normal_like, uniform_like, use
from .convert import convert, strip
from .edges import Edges
from .feedback import FeedbackRule
from .feedback_layers import FeedbackConv2d, FeedbackLinear
from .forwards import FORWARDS
from .functional import activation
from .hook import attach_param_hooks
from .interval import Interval
from .learning import learnable, learned_values
from .primitive import Primitive
from .registry import RuleError, blend, compose, get, names, register, unregister
from .rules import Composite, Rule
from .scheduling import Clock
from .targeting import Selection, select
from .wrappers import Activation

# Mask rules compute their masks on the compiled kernels, which freegrad.rules does not import.
rules.set_compute_mask(kernels.compute_mask)

__version__ = "2.0.0"

__all__ = [
    "Activation",
    "Blend",
    "Clock",
    "Composite",
    "Edges",
    "FeedbackConv2d",
    "FeedbackLinear",
    "FeedbackRule",
    "FORWARDS",
    "Interval",
    "Primitive",
    "Rule",
    "RuleContext",
    "RuleError",
    "Selection",
    "activation",
    "attach_param_hooks",
    "blend",
    "compose",
    "convert",
    "diagnostics",
    "exact",
    "feedback",
    "get",
    "learnable",
    "learned_values",
    "names",
    "normal_like",
    "register",
    "schedules",
    "select",
    "strip",
    "transforms",
    "uniform_like",
    "unregister",
    "use",
    "__version__",
]
