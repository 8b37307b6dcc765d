"""The grader's own math, on the trusted side: the right answers for the grader's weights and
batches (`grader.inputs`), computed in float64 with numpy, without any of the submission's code
(and without torch, which this process never imports); and the tensors a probe returned, decoded
from their bytes."""
import functools
import math
import os

# One BLAS thread, read by numpy as it loads: the products here are a layer's size, and more
# threads would only spin against the probes beside this process (and, in a batch, each other).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy  # noqa: E402

from grader import heap, inputs  # noqa: E402
from grader.contract import BATCH, DEFAULT_LR, DEFAULT_STEPS, LR, PIPELINE_BATCH, SEEDS, SHAPES, STEPS

heap.keep_freed_memory()  # the arrays here are a layer's size; a batch's workers inherit it
ROLES = tuple(SHAPES)
BLOCK = 1 << 16  # elements compared, or of a layer widened, at a time (512 KiB of float64)


class BadBlob(Exception):
    """A returned tensor whose bytes do not match its announced shape."""


def tensor(blobs, name, shape):
    """The float32 tensor `name` of a probe's blobs, as a read-only float32 array over its bytes
    (not copied: arithmetic with the float64 references widens each value exactly, as it goes);
    BadBlob if absent or mis-sized."""
    data = blobs.get(name)
    count = 1
    for size in shape:
        count *= size
    if data is None or len(data) != 4 * count:
        raise BadBlob(f"{name}: expected {count} float32 values")
    return numpy.frombuffer(data, dtype=numpy.float32).reshape(shape)


def weights(seed):
    return {role: value.astype(numpy.float64) for role, value in inputs.weights(seed).items()}


def _relu(a):
    return numpy.maximum(a, 0.0)


def forward(w, x):
    """relu(W2 relu(W1 x + b1) + b2), the lab's network, in float64 (float32 weights widen exactly)."""
    return _relu(_times_transposed(_relu(_times_transposed(x, w["w1"]) + w["b1"]), w["w2"]) + w["b2"])


def _times_transposed(a, w):
    """a @ w.T in float64, w's rows widened a block at a time (a product of mixed types would not
    use BLAS): a float32 layer (a probe's blob) is never copied whole, which in a batch's fresh
    worker would fault in every page of the copy."""
    if w.dtype == numpy.float64:
        return a @ w.T
    rows = max(1, BLOCK // w.shape[1])
    out, wide = numpy.empty((a.shape[0], w.shape[0])), numpy.empty((rows, w.shape[1]))
    for start in range(0, w.shape[0], rows):
        part = wide[:min(rows, w.shape[0] - start)]
        numpy.copyto(part, w[start:start + len(part)])
        out[:, start:start + len(part)] = a @ part.T
    return out


def backward(w, x, y):
    """(output, MSE loss against `y`, {role: gradient}) of the lab's network at weights `w`,
    written out: autograd's own rules for linear layers and ReLU (whose gradient at 0 is 0)."""
    hidden_in = x @ w["w1"].T + w["b1"]
    hidden = _relu(hidden_in)
    out_in = hidden @ w["w2"].T + w["b2"]
    out = _relu(out_in)
    grad_out_in = 2 * (out - y) / out.size * (out_in > 0)
    grad_hidden_in = (grad_out_in @ w["w2"]) * (hidden_in > 0)
    grads = {"w1": grad_hidden_in.T @ x, "b1": grad_hidden_in.sum(0),
             "w2": grad_out_in.T @ hidden, "b2": grad_out_in.sum(0)}
    return out, float(((out - y) ** 2).mean()), grads


def loss(seed, size, w):
    """The MSE loss of the lab's network with weights `w` on the grader's batch of `seed`."""
    x, y = _batch(seed, size)
    return float(((forward(w, x) - y) ** 2).mean())


@functools.cache
def _batch(seed, size):
    """(x, y) in float64, only ever read: a batch's workers share what warm() drew."""
    return tuple(value.astype(numpy.float64) for value in inputs.batch(seed, size))


@functools.cache
def output(seed, size):
    """The right output for the grader's weights and batch of `seed`."""
    return forward(weights(seed), _batch(seed, size)[0])


def sgd(seed, size, steps, lr, accumulate=False):
    """The handout's loop on the grader's weights and batch of `seed`: MSE, plain SGD at `lr`.
    Returns (the loss before each step, the final weights, the last step's update). With
    `accumulate`, the mistake of never zeroing the gradients: each step adds to the last's."""
    return _sgd(seed, size, steps, lr, bool(accumulate))


@functools.cache
def _sgd(seed, size, steps, lr, accumulate):
    """`sgd`, cached under one key however it was called (functools.cache keys a defaulted
    argument apart from a passed one)."""
    x, y = _batch(seed, size)
    w = weights(seed)  # this run's own arrays: updated in place
    losses, update = [], {}
    total = {role: numpy.zeros_like(value) for role, value in w.items()} if accumulate else None
    for _ in range(steps):
        _, value, grads = backward(w, x, y)
        losses.append(value)
        for role in ROLES:
            if accumulate:  # every step's gradient added up, and the sum scaled, each in place
                total[role] += grads[role]
                update[role] = numpy.multiply(total[role], -lr, out=update.get(role))
            else:  # backward's own fresh gradient, scaled in place
                update[role] = numpy.multiply(grads[role], -lr, out=grads[role])
            w[role] += update[role]
    return losses, w, update


def losses(seed, size, steps, lr, accumulate=False):
    """The loss before each of the first `steps` steps of `sgd`. A run's first losses do not depend
    on how many steps follow, and the loss before the step after its last is its final weights'
    loss: every count up to STEPS + 1 reads the one run of STEPS."""
    if steps > STEPS + 1:
        return sgd(seed, size, steps, lr, accumulate)[0]
    before = sgd(seed, size, STEPS, lr, accumulate)[0][:steps]
    return before + [_final_loss(seed, size, lr, accumulate)] * (steps - len(before))


@functools.cache
def _final_loss(seed, size, lr, accumulate):
    return loss(seed, size, sgd(seed, size, STEPS, lr, accumulate)[1])


@functools.cache
def gradients(seed, size):
    """The output and the gradients of the MSE loss of one training step on the grader's weights
    and batch (Part 6's: the probe's step is the grader's own, grader.runner.own_math.sgd_step)."""
    out, _, grads = backward(weights(seed), *_batch(seed, size))
    return out, grads


@functools.cache
def update_norm(seed, size, steps, lr):
    """The size of the last step's update of `sgd`: the yardstick its final weights are judged by."""
    return norm(sgd(seed, size, steps, lr)[2].values())


def norm(arrays):
    """The Euclidean norm of `arrays` taken as one vector, in float64."""
    total = 0.0
    for array in arrays:
        flat = numpy.ravel(array).astype(numpy.float64, copy=False)
        total += float(flat @ flat)
    return math.sqrt(total)


def distance(got, expected):
    """The Euclidean distance between two {role: array} of the same shapes, in float64."""
    return norm(numpy.subtract(a, b, dtype=numpy.float64) for role in expected
                for a, b in _blocks(got[role], expected[role]))


def largest_difference(got, expected):
    """max |got - expected|, NaN-aware: inf when either holds a NaN or an infinity (a NaN or an
    infinity in either makes their difference one, and the maximum of any block holding one)."""
    largest = 0.0
    for a, b in _blocks(got, expected):
        with numpy.errstate(invalid="ignore"):  # (inf - inf: a NaN, answered below)
            block = float(numpy.abs(numpy.subtract(a, b, dtype=numpy.float64)).max())
        if not math.isfinite(block):
            return float("inf")
        largest = max(largest, block)
    return largest


def _blocks(got, expected):
    """The two arrays' elements in matching blocks of BLOCK: their float64 differences never need
    memory the size of a layer."""
    got, expected = numpy.ravel(got), numpy.ravel(expected)
    for start in range(0, got.size, BLOCK):
        yield got[start:start + BLOCK], expected[start:start + BLOCK]


def warm(diagnoses=False):
    """Compute the references the checks will ask for (the grader calls this while the sandbox
    starts: it is work off the critical path). With `diagnoses`, also the losses of the common
    mistakes, which only a wrong train() needs: a batch, whose workers are forked from the process
    that computed them, asks for them once for the whole class, and the final weights of train()'s
    default step count, which a train() that ignores `steps` is compared with."""
    output(SEEDS["forward"], BATCH)
    update_norm(SEEDS["train"], BATCH, STEPS, LR)
    gradients(SEEDS["pipeline"], PIPELINE_BATCH)
    if diagnoses:
        for lr, accumulate in ((LR, False), (DEFAULT_LR, False), (LR, True)):
            losses(SEEDS["train"], BATCH, STEPS + 1, lr, accumulate)
        sgd(SEEDS["train"], BATCH, DEFAULT_STEPS, LR)
