"""The grader's own math, on the trusted side: the right answers for the grader's weights and
batches (`grader.inputs`), computed in float64 without any of the submission's code, and the
tensors a probe returned, decoded from their bytes."""
import functools

import torch

from grader import inputs
from grader.contract import BATCH, LR, PIPELINE_BATCH, SEEDS, SHAPES, STEPS

ROLES = tuple(SHAPES)


class BadBlob(Exception):
    """A returned tensor whose bytes do not match its announced shape."""


def tensor(blobs, name, shape):
    """The float32 tensor `name` of a probe's blobs, as float64; BadBlob if absent or mis-sized."""
    data = blobs.get(name)
    count = 1
    for size in shape:
        count *= size
    if data is None or len(data) != 4 * count:
        raise BadBlob(f"{name}: expected {count} float32 values")
    return torch.frombuffer(bytearray(data), dtype=torch.float32).reshape(shape).double()


def weights(seed):
    return {role: value.double() for role, value in inputs.weights(seed).items()}


def forward(w, x):
    """relu(W2 relu(W1 x + b1) + b2), the lab's network."""
    return torch.relu(torch.relu(x.double() @ w["w1"].T + w["b1"]) @ w["w2"].T + w["b2"])


def mse(out, y):
    return ((out - y.double()) ** 2).mean()


def loss(seed, size, w):
    """The MSE loss of the lab's network with weights `w` on the grader's batch of `seed`."""
    x, y = inputs.batch(seed, size)
    return mse(forward(w, x), y).item()


@functools.cache
def output(seed, size):
    """The right output for the grader's weights and batch of `seed`."""
    x, _ = inputs.batch(seed, size)
    return forward(weights(seed), x)


@functools.cache
def sgd(seed, size, steps, lr, accumulate=False):
    """The handout's loop on the grader's weights and batch of `seed`: MSE, plain SGD at `lr`.
    Returns (the loss before each step, the final weights, the last step's update). With
    `accumulate`, the mistake of never zeroing the gradients: each step adds to the last's."""
    x, y = inputs.batch(seed, size)
    w = {role: value.clone().requires_grad_() for role, value in weights(seed).items()}
    losses, update, total = [], {}, {role: 0.0 for role in ROLES}
    for _ in range(steps):
        loss = mse(forward(w, x), y)
        grads = torch.autograd.grad(loss, [w[r] for r in ROLES])
        losses.append(loss.item())
        with torch.no_grad():
            for role, grad in zip(ROLES, grads):
                total[role] = total[role] + grad if accumulate else grad
                update[role] = -lr * total[role]
                w[role] += update[role]
    return losses, {role: value.detach() for role, value in w.items()}, update


@functools.cache
def gradients(seed, size):
    """The output and the gradients of mean(output²) on the grader's weights and batch (Part 6)."""
    x, _ = inputs.batch(seed, size)
    w = {role: value.clone().requires_grad_() for role, value in weights(seed).items()}
    out = forward(w, x)
    grads = torch.autograd.grad(out.square().mean(), [w[r] for r in ROLES])
    return out.detach(), dict(zip(ROLES, grads))


def all_finite(tensors):
    return all(torch.isfinite(t).all() for t in tensors)


def largest_difference(got, expected):
    """max |got - expected|, NaN-aware: inf when either holds a NaN or an infinity."""
    if not all_finite((got, expected)):
        return float("inf")
    return (got - expected).abs().max().item()


def warm():
    """Compute the references the checks will ask for (the grader calls this while the sandbox
    starts: it is work off the critical path)."""
    output(SEEDS["forward"], BATCH)
    sgd(SEEDS["train"], BATCH, STEPS, LR)
    gradients(SEEDS["pipeline"], PIPELINE_BATCH)
