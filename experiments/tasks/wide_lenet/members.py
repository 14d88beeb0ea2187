"""A member of a wide LeNet-5 run and what its rule is to the C++ step (``step.cpp``)."""

from __future__ import annotations

import dataclasses

import freegrad as fg
import torch

from experiments.config.schema import TRUE_DERIVATIVE

FORWARDS = {"Linear": 0, "ReLU": 1, "Logistic": 2, "Tanh": 3}
SHAPES = {"conv1": (6, 28, 28), "conv2": (16, 10, 10), "fc1": (120,), "fc2": (84,)}
DRAW_ORDER = ("fc2", "fc1", "conv2", "conv1")  # the solo backward's order of the activations

# rule kinds of wide_lenet.cpp
PASS, RELU_TRUE, SIGMOID_TRUE, TANH_TRUE, MASK, TRIANGULAR, D_LOGISTIC, D_TANH = range(8)
NOISE_ADD, NOISE_MUL, JAM, ZERO, SCALE = range(8, 13)
_NATIVE_TRUE = {"Linear": PASS, "ReLU": RELU_TRUE, "Logistic": SIGMOID_TRUE, "Tanh": TANH_TRUE}



@dataclasses.dataclass(frozen=True)
class Member:
    """One run: ``seed`` initialises it; ``order_seed`` / ``rule_seed`` (default ``seed``) seed
    its batch order and its rule's random numbers; ``lr`` (default the shared one)."""

    seed: int
    forward: str = "ReLU"
    backward: str | None = None  # None / "true" / "d(<forward>)": the true derivative
    rule_params: dict = dataclasses.field(default_factory=dict)
    lr: float | None = None
    order_seed: int | None = None
    rule_seed: int | None = None
    scope: str = "activations"
    name: str = ""

    @classmethod
    def from_config(cls, cfg: dict, seed: int, lr: float | None = None, name: str = "") -> Member:
        """A member from a resolved configuration (``params.resolve(...)["configs"][name]``)."""
        if cfg.get("forward_params"):
            raise ValueError(
                f"wide_lenet: forward params {cfg['forward_params']} are not supported")
        return cls(seed=seed, forward=cfg["forward"], backward=cfg.get("backward"),
                   rule_params=dict(cfg.get("rule_params") or {}),
                   lr=cfg["lr"] if cfg.get("lr") is not None else lr,
                   scope=cfg.get("scope", "activations"), name=name)

    @property
    def true_derivative(self) -> bool:
        return self.backward in TRUE_DERIVATIVE or self.backward == f"d({self.forward})"


@dataclasses.dataclass
class Rule:
    """A member's rule as the C++ step takes it: 9 numbers, and what it draws (None,
    "rand" or "randn")."""

    spec: torch.Tensor
    draw: str | None
    residual: str


def _builtin(name: str):
    from freegrad.transforms import basic, derivatives, jamming, surrogates

    table = {
        "d(Linear)": derivatives.d_linear, "d(ReLU)": derivatives.d_relu,
        "d(ReLU6)": derivatives.d_relu6, "d(HardTanh)": derivatives.d_hardtanh,
        "d(LeakyReLU)": derivatives.d_leaky_relu, "d(Logistic)": derivatives.d_logistic,
        "d(Tanh)": derivatives.d_tanh, "d(Heaviside)": derivatives.d_heaviside,
        "d(Sign)": derivatives.d_sign, "rectangular": basic.rectangular,
        "triangular": basic.triangular, "scale": basic.scale, "noise": basic.noise,
        "straight_through": surrogates.straight_through, "full_jam": jamming.full_jam,
        "positive_jam": jamming.positive_jam, "rectangular_jam": jamming.rectangular_jam,
    }
    return table.get(name)


def rule_of(member: Member) -> Rule:
    """What the C++ step does at each activation of ``member``; ValueError if unsupported."""
    if member.forward not in FORWARDS:
        raise ValueError(f"wide_lenet: forward {member.forward!r} is not supported "
                         f"(supported: {sorted(FORWARDS)})")
    spec = [PASS, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    if member.true_derivative:
        spec[0] = _NATIVE_TRUE[member.forward]
        return Rule(torch.tensor(spec, dtype=torch.float64), None,
                    {RELU_TRUE: "input", SIGMOID_TRUE: "output", TANH_TRUE: "output"}.get(
                        spec[0], "none"))
    if member.scope not in ("activations", "all"):
        raise ValueError(f"wide_lenet: scope {member.scope!r} is not supported (LeNet5 has no "
                         "parameter hooks: only activation rules change its training)")
    scheduled = sorted(k for k, v in member.rule_params.items() if fg.schedules.is_schedule(v))
    if scheduled:
        raise ValueError(f"wide_lenet: rule parameter(s) {scheduled} follow a schedule (the C++ "
                         "step binds fixed parameters; the training loop counts the steps)")
    rule = fg.get(member.backward)
    if _builtin(getattr(rule, "name", None)) is not rule:
        raise ValueError(f"wide_lenet: rule {member.backward!r} is not supported")
    bound = rule.bind(member.rule_params)  # freegrad checks the params
    name, p = bound.name, bound.params

    def window(params):
        lo, hi = rule.mask.bounds(**params)
        spec[3:7] = [float(lo), float(hi), float(rule.mask.closed[0]), float(rule.mask.closed[1])]

    draw, residual = _rule_kind(name, p, spec, window)
    return Rule(torch.tensor(spec, dtype=torch.float64), draw, residual)


def _rule_kind(name: str, p: dict, spec: list, window) -> tuple[str | None, str]:
    """Fill ``spec`` for built-in rule ``name`` with parameters ``p``; (what it draws, the
    residual its backward keeps)."""
    draw, residual = None, "input"
    if name == "d(Linear)":
        residual = "none"
    elif name in ("d(Heaviside)", "d(Sign)"):
        spec[0], residual = ZERO, "none"
    elif name == "scale":
        spec[0], spec[1], residual = SCALE, float(p["s"]), "none"
    elif name == "triangular":
        spec[0], spec[1] = TRIANGULAR, float(p["width"])
    elif name == "d(Logistic)":
        spec[0] = D_LOGISTIC
    elif name == "d(Tanh)":
        spec[0] = D_TANH
    elif name in ("rectangular", "d(ReLU)", "d(ReLU6)", "d(HardTanh)", "straight_through",
                  "d(LeakyReLU)"):
        spec[0] = MASK
        window(p)
        spec[1] = float(p["negative_slope"]) if name == "d(LeakyReLU)" else 0.0
    elif name == "noise":
        spec[0] = NOISE_ADD if p["mode"] == "additive" else NOISE_MUL
        spec[1], draw, residual = float(p["sigma"]), "randn", "none"
    elif name in ("full_jam", "positive_jam", "rectangular_jam"):
        spec[0], draw = JAM, "rand"
        spec[8] = 0.0 if p["mode"] == "scale" else 1.0
        if name == "full_jam":
            residual = "none"
        else:
            window(p)
            spec[7] = 1.0 if p["test"] == "input" else 2.0
            residual = "input" if p["test"] == "input" else "none"
    else:  # pragma: no cover - _builtin lists exactly the names above
        raise ValueError(f"wide_lenet: rule {name!r} is not supported")
    return draw, residual


def check_members(members: list[Member]) -> None:
    """ValueError naming the first member the engine cannot train."""
    for i, m in enumerate(members):
        try:
            rule_of(m)
        except ValueError as exc:
            raise ValueError(f"member {i} ({m.name or m}): {exc}") from None
