"""Parameter checks shared by the built-in rules (each raises ValueError)."""

from __future__ import annotations


def positive(*names: str):
    def check(**params):
        for name in names:
            if params[name] <= 0:
                raise ValueError(f"{name}={params[name]!r} must be > 0")

    return check


def non_negative(*names: str):
    def check(**params):
        for name in names:
            if params[name] < 0:
                raise ValueError(f"{name}={params[name]!r} must be >= 0")

    return check


def ordered(low: str, high: str):
    def check(**params):
        if not params[low] < params[high]:
            raise ValueError(f"{low}={params[low]!r} must be < {high}={params[high]!r}")

    return check


def one_of(**choices: tuple[str, ...]):
    def check(**params):
        for name, accepted in choices.items():
            if params[name] not in accepted:
                raise ValueError(f"{name}={params[name]!r}; accepted: {list(accepted)}")

    return check


def all_of(*checks):
    def check(**params):
        for c in checks:
            c(**params)

    return check
