"""The grader's own math, on the trusted side: the right answers for the grader's weights and
batches (`grader.inputs`), computed in float64 without any of the submission's code, and the
tensors a probe returned, decoded from their bytes."""
import torch

from grader import inputs
from grader.contract import SHAPES

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


def loss(w, x, y):
    """The MSE loss of the lab's network with weights `w` on (x, y)."""
    return mse(forward(w, x), y).item()


def sgd(seed, x, y, steps, lr):
    """The handout's loop on the grader's weights: MSE, plain SGD at `lr`, one fixed batch.
    Returns (the loss before each step, the final weights, the last step's update)."""
    w = {role: value.clone().requires_grad_() for role, value in weights(seed).items()}
    losses, update = [], {}
    for _ in range(steps):
        loss = mse(forward(w, x), y)
        grads = torch.autograd.grad(loss, [w[r] for r in ROLES])
        losses.append(loss.item())
        with torch.no_grad():
            for role, grad in zip(ROLES, grads):
                update[role] = -lr * grad
                w[role] += update[role]
    return losses, {role: value.detach() for role, value in w.items()}, update


def gradients(seed, x):
    """The output and the gradients of mean(output²) on the grader's weights (Part 6's check)."""
    w = {role: value.clone().requires_grad_() for role, value in weights(seed).items()}
    out = forward(w, x)
    grads = torch.autograd.grad(out.square().mean(), [w[r] for r in ROLES])
    return out.detach(), dict(zip(ROLES, grads))


def largest_difference(got, expected):
    """max |got - expected|, NaN-aware: inf when either holds a NaN or an infinity."""
    if not (torch.isfinite(got).all() and torch.isfinite(expected).all()):
        return float("inf")
    return (got - expected).abs().max().item()


def batch(seed, size):
    return inputs.batch(seed, size)
