"""Train several LeNet-5 runs of a grid at once on one CPU thread, 2-3x faster per core (issue 23).

``train(members, data, ...)`` trains K members - runs that share the architecture (the
``LeNet5`` of ``experiments.tasks.models``), the optimiser (SGD: momentum, weight decay) and the
batch size - each with its own initialisation seed, batch order, forward activation, backward
rule, rule generator and learning rate. It returns, per member, what
``experiments.training.loop.fit`` returns for that run alone: one row per epoch (epoch 0 the
initial evaluation) with ``train_loss, train_acc, test_loss, test_acc, seconds``, and for a
member whose loss turned NaN or infinite the epoch and step where it did (``loop.Diverged``'s
numbering) and its rows so far; it stops there, before that step's update, and the others go
on.

Members stay independent: each runs its own C++ step on its own parameters, nothing of one
enters another's arithmetic, so a member's numbers do not depend on which members train beside
it (tested byte for byte, a diverging member included). Each equals its solo run up to float
rounding (tests/pipeline/test_wide_lenet.py: relative parameter difference <= 1e-5 after 4
steps, measured 4e-8 to 4e-6):

* initialisation: ``torch.manual_seed(seed)`` then the five layers of ``LeNet5``, as
  ``build_lenet5`` makes them, exactly (the global RNG is restored afterwards);
* batch order: ``torch.randperm(n, generator=torch.Generator().manual_seed(order_seed))``
  per epoch, one generator for the run, batches ``perm[i:i + batch_size]``;
* the rule: the one ``experiments.training.binding.rule_context`` binds (``fg.use(backward, params,
  seed=rule_seed)``), at all four activations, with freegrad's arithmetic; the true derivative
  (``d(<forward>)``) is the native backward of the forward's op (threshold_backward,
  sigmoid_backward, tanh_backward). Stochastic rules draw from their own
  ``torch.Generator().manual_seed(rule_seed)`` what the solo run draws, in its order (fc2's
  activation, fc1's, conv2's, conv1's, one call each per step) and shapes: the jamming rules'
  U[0, 1) numbers are torch.rand's exactly (the generator's MT19937 stream, 14x faster);
  noise's N(0, 1) numbers come from torch.randn's uniforms exactly through Box-Muller on our
  own log/sin/cos (within 5e-7 of torch.randn's, 5x faster). So a stochastic member matches
  its solo run to float rounding, not only in distribution;
* SGD as ``torch.optim.SGD``'s single-tensor step; evaluation in chunks of 4096, the loss the
  chunk's ``F.cross_entropy`` of the logits times its length, as
  ``experiments.training.loop.evaluate``.

How (the speed): one call of a C++ step (``step.cpp``, built on first use with
``torch.utils.cpp_extension``, ~30-60 s, then loaded; -O3 -march=native, so one build per CPU
model) per member and batch: the batch goes through the network 64 images at a time and the
convolutions 8 at a time, so layer outputs stay in L1/L2; conv1 is a direct AVX-512
convolution fused with its activation, residual and pooling; conv2 and the fc layers are MKL
sgemm on the tile; a hand-derived backward and the SGD update follow in the same call. No
autograd graph, no per-op dispatch, no allocation per step. Measured
(benchmarks/bench_lenet_throughput.py, one thread, ratios against the path at 32ce056 in one
invocation): lenet grid (batch 256) 2.2-2.5x, cnn grid (batch 64) 2.7-3.1x, at ~50% of the
core's sgemm speed; what holds it there: conv2's three GEMMs (M = 16 or K = 16) at ~75% of
sgemm, conv1's direct kernels at ~40%, and the passes between them (activation, pooling,
im2col, col2im, rules, the random numbers). Where the extension cannot be built (no compiler,
no BLAS symbol), ``train`` raises and the pipeline trains with its own loop
(``tasks.lenet5.fast_fit_supports``), the same runs at the old speed.

Modules: ``members`` (a member and its rule as the step takes it), ``weights`` (the packed
parameters), ``build`` (the extension), ``native`` (``train``), ``step.cpp``.

Supported: forwards Linear, ReLU, Logistic, Tanh (no forward params); backwards: the true
derivative, and the freegrad rules d(Linear), d(ReLU), d(ReLU6), d(HardTanh), d(LeakyReLU),
d(Logistic), d(Tanh), d(Heaviside), d(Sign), rectangular, triangular, straight_through, scale,
noise (additive, multiplicative), full_jam, positive_jam, rectangular_jam (mode scale or sign,
test input or grad); scope "activations" (or "all": LeNet5 has no parameter hooks); SGD with
momentum and weight decay; a learning rate per member; gradient diagnostics through
``before_step`` (``tasks.lenet5`` measures them on an ``nn`` copy loaded with the step's
weights). Not supported (ValueError, or not offered): other forwards or rules (clip_norm,
centralize, the smooth surrogates, composites, user rules), scope "params", Adam, nesterov,
dampening, torch.compile,
models other than LeNet-5 on 28x28 single-channel images, GPUs.
"""

from experiments.tasks.wide_lenet.build import build_name, extension, status
from experiments.tasks.wide_lenet.members import FORWARDS, Member, check_members, rule_of
from experiments.tasks.wide_lenet.native import EVAL_BATCH, TILE, Diverged, Result, train
from experiments.tasks.wide_lenet.weights import init_params, pack, state_dict

__all__ = ["EVAL_BATCH", "FORWARDS", "TILE", "Diverged", "Member", "Result", "build_name",
           "check_members", "extension", "init_params", "pack", "rule_of", "state_dict",
           "status", "train"]
