"""Training K members with the C++ step: each its own parameters, batch order, rule and
generator; nothing of one member enters another's arithmetic."""

from __future__ import annotations

import dataclasses
import math
import time

import torch
import torch.nn.functional as F

from experiments.tasks.wide_lenet.build import extension, status
from experiments.tasks.wide_lenet.members import (
    DRAW_ORDER,
    FORWARDS,
    SHAPES,
    Member,
    check_members,
    rule_of,
)
from experiments.tasks.wide_lenet.weights import init_params, state_dict

EVAL_BATCH = 4096  # experiments.training.loop.evaluate's chunk
TILE = 8  # images per convolution tile (measured: 2-16 within noise; 8 keeps a tile in L2)


@dataclasses.dataclass
class Diverged:
    """Where a member's loss became NaN or infinite (``experiments.loop.Diverged``'s fields)."""

    epoch: int
    step: int
    loss: float


@dataclasses.dataclass
class Result:
    """One member's run: its rows (epoch 0 = initial evaluation), ``diverged`` (None if it
    trained every epoch) and its final parameters (``state_dict()`` for ``models.LeNet5``)."""

    member: Member
    rows: list[dict]
    diverged: Diverged | None
    params: torch.Tensor

    def state_dict(self) -> dict[str, torch.Tensor]:
        return state_dict(self.params)


def _images(x: torch.Tensor) -> torch.Tensor:
    if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        raise ValueError(f"wide_lenet: images must be (N, 1, 28, 28), not {tuple(x.shape)}")
    return x.detach().to(torch.float32).reshape(len(x), 28, 28).contiguous()


class _State:
    """One member's training state."""

    def __init__(self, member: Member, lr: float, n_classes: int):
        self.member, self.lr = member, float(member.lr if member.lr is not None else lr)
        self.rule = rule_of(member)
        self.fwd = FORWARDS[member.forward]
        self.params = init_params(member.seed, n_classes)
        self.grad = torch.empty_like(self.params)
        self.mom = torch.empty_like(self.params)
        self.mom_init = True
        order = member.seed if member.order_seed is None else member.order_seed
        self.order = torch.Generator().manual_seed(order)
        rule_seed = member.seed if member.rule_seed is None else member.rule_seed
        self.gen = torch.Generator().manual_seed(rule_seed)
        self.rows: list[dict] = []
        self.diverged: Diverged | None = None
        self.exact_draws = False

    def draws(self, b: int) -> list:
        """What the step draws its random numbers from: (u4, u3, u2, u1, generator). The
        step draws them itself, as torch.rand / torch.randn would from the generator; with
        ``exact_draws`` (tests) they are torch.randn's own, drawn here."""
        if self.rule.draw is None:
            return [None] * 5
        if not (self.exact_draws and self.rule.draw == "randn"):
            return [None] * 4 + [self.gen]
        u = {layer: torch.randn((b, *SHAPES[layer]), generator=self.gen) for layer in DRAW_ORDER}
        return [u["fc2"], u["fc1"], u["conv2"], u["conv1"], None]


def _evaluate(ext, st: _State, x, y, n_classes: int, tile: int, chunk: int
              ) -> tuple[float, float]:
    total, correct = 0.0, 0
    for i in range(0, len(x), chunk):
        n = min(chunk, len(x) - i)
        out = ext.forward(st.params, n_classes, x, i, n, st.fwd, tile)
        yb = y[i:i + n]
        total += float(F.cross_entropy(out, yb)) * n
        correct += int((out.argmax(dim=1) == yb).sum())
    return total / len(x), correct / len(x)


def _epoch(ext, active: list, data: tuple, n_classes: int, epoch: int, step: int,
           hyper: dict, before_step=None) -> tuple[list, int]:
    """One pass of every active member over the training set; per member (loss sum, correct
    count), and the step count after it.  A member whose loss turns non-finite stops before
    that step's update (``diverged``).  ``before_step(state, step, idx)``, if given, sees each
    member's parameters before each of its steps (``step`` counted from 0)."""
    x, y = data
    n, batch_size = len(x), hyper["batch_size"]
    perms = [torch.randperm(n, generator=st.order) for st in active]
    sums = [[0.0, 0] for _ in active]
    for i in range(0, n, batch_size):
        step += 1
        for j, st in enumerate(active):
            if st.diverged is not None:
                continue
            idx = perms[j][i:i + batch_size]
            if before_step is not None:
                before_step(st, step - 1, idx)
            loss, correct = ext.step(
                st.params, st.grad, st.mom, st.mom_init, n_classes, x, y, idx, st.fwd,
                st.rule.spec, *st.draws(len(idx)), st.lr, hyper["momentum"],
                hyper["weight_decay"], hyper["tile"])
            if not math.isfinite(loss):
                st.diverged = Diverged(epoch, step, loss)
                continue
            st.mom_init = False
            sums[j][0] += loss * len(idx)
            sums[j][1] += correct
    return sums, step


def train(members: list[Member], data: dict, *, batch_size: int, epochs: int, lr: float = 0.01,
          momentum: float = 0.0, weight_decay: float = 0.0, eval_batch: int = EVAL_BATCH,
          tile: int = TILE, on_epoch=None, before_step=None) -> list[Result]:
    """Train ``members`` on ``data`` (``models.prepare_images``' dict: ``train_x`` (N, 1, 28,
    28) in [0, 1], ``train_y``, ``test_x``, ``test_y``, ``meta`` with ``classes``); one
    ``Result`` per member, in order.  RuntimeError where the C++ step cannot be built.

    ``seconds`` in a row is the epoch's wall time (training pass and test evaluation) divided
    by the members that trained it. ``on_epoch(member_index, row)`` is called after every
    epoch of every member; ``before_step(member_index, step, idx, params)`` before each of a
    member's steps (``step`` from 0, ``idx`` the batch's indices, ``params`` its packed
    parameters, for gradient diagnostics)."""
    check_members(members)
    ext = extension()
    if ext is None:
        raise RuntimeError(f"wide_lenet: the C++ step is {status()}")
    n_classes = int(data.get("meta", {}).get("classes", 10))
    x, y = _images(data["train_x"]), data["train_y"].to(torch.int64).contiguous()
    tx, ty = _images(data["test_x"]), data["test_y"].to(torch.int64).contiguous()
    states = [_State(m, lr, n_classes) for m in members]
    for st in states:
        st.rows.append(_row(0, _evaluate(ext, st, x, y, n_classes, tile, eval_batch),
                            _evaluate(ext, st, tx, ty, n_classes, tile, eval_batch), 0.0))
    hyper = {"batch_size": batch_size, "momentum": momentum, "weight_decay": weight_decay,
             "tile": tile}
    step = 0
    for epoch in range(1, epochs + 1):
        active = [st for st in states if st.diverged is None]
        if not active:
            break
        t0 = time.perf_counter()
        hook = None if before_step is None else (
            lambda st, k, idx: before_step(states.index(st), k, idx, st.params))
        sums, step = _epoch(ext, active, (x, y), n_classes, epoch, step, hyper, hook)
        done = [(j, st) for j, st in enumerate(active) if st.diverged is None]
        tests = [_evaluate(ext, st, tx, ty, n_classes, tile, eval_batch) for _, st in done]
        seconds = (time.perf_counter() - t0) / len(active)
        for (j, st), test in zip(done, tests, strict=True):
            st.rows.append(_row(epoch, (sums[j][0] / len(x), sums[j][1] / len(x)), test,
                                seconds))
            if on_epoch is not None:
                on_epoch(states.index(st), st.rows[-1])
    return [Result(st.member, st.rows, st.diverged, st.params) for st in states]


def _row(epoch: int, train: tuple, test: tuple, seconds: float) -> dict:
    return dict(epoch=epoch, train_loss=train[0], train_acc=train[1], test_loss=test[0],
                test_acc=test[1], seconds=seconds)
