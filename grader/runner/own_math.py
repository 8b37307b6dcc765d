"""The grader's own computations inside the sandbox, on the GPUs the probe runs on: the lab's
forward from the located parameters, its timing, a plain SGD step, and the unsplit baseline model.
None of it calls the submission's code; it runs beside it so that both see the same devices."""
import functools
import time
from time import perf_counter as host_clock  # bound before any clock is patched

import torch
import torch.nn.functional as F

from grader import inputs
from grader.contract import LR

CUDA0, CUDA1 = torch.device("cuda", 0), torch.device("cuda", 1)


def forward(params, x):
    """The two layers written out with the grader's own functional math."""
    h = F.relu(F.linear(x.to(params["w1"].device), params["w1"], params["b1"]))
    return F.relu(F.linear(h.to(params["w2"].device), params["w2"], params["b2"]))


def synchronize(devices=(0, 1)):
    for device in devices:
        torch.cuda.synchronize(device)


def seconds(params, x, wait=True):
    """The host-clock seconds of the grader's forward of `params` (real GPUs), measured as a correct
    time_forward does (`wait`: until every GPU holding them is done) or as one that forgets to
    synchronize. The selftest compares the two."""
    devices = {p.device for p in params.values()}
    with torch.no_grad():
        synchronize(devices)
        start = host_clock()
        forward(params, x)
        synchronize(devices if wait else ())
        return host_clock() - start


def idle_fraction(params, x):
    """The handout's idle fraction of the same stages, measured with CUDA events on the GPU doing
    each stage's work, on the runtime's clock (virtual time on virtual GPUs, as the student's)."""
    events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
    x = x.to(params["w1"].device)
    synchronize()
    start = time.perf_counter()
    with torch.cuda.device(0):
        events[0].record()
        h = F.relu(F.linear(x, params["w1"], params["b1"]))
        events[1].record()
    h = h.to(params["w2"].device)
    with torch.cuda.device(1):
        events[2].record()
        F.relu(F.linear(h, params["w2"], params["b2"]))
        events[3].record()
    synchronize()
    wall_ms = (time.perf_counter() - start) * 1000
    busy = events[0].elapsed_time(events[1]) + events[2].elapsed_time(events[3])
    return 1 - busy / (2 * wall_ms)


@functools.cache
def weights(seed):
    """The grader's weights of `seed` (grader.inputs) as CPU tensors, only ever read: drawn once in
    the zygote (grader.runner.probes.prepare), before any session, which shares them."""
    return {role: torch.from_numpy(value) for role, value in inputs.weights(seed).items()}


def batch(seed, size):
    """The grader's (x, y) of `seed` (grader.inputs) as CPU tensors of the probe's own: the
    submission may write into what it is given."""
    return tuple(torch.from_numpy(value.copy()) for value in _drawn(seed, size))


@functools.cache
def _drawn(seed, size):
    """Drawn once in the zygote for the probes' own batches (grader.runner.probes.prepare)."""
    return inputs.batch(seed, size)


def unsplit_model(seed):
    """The grader's weights of `seed`, each layer on its GPU: the baseline Part 6 is compared with."""
    drawn = weights(seed)
    return {role: value.to(CUDA0 if role in ("w1", "b1") else CUDA1).requires_grad_() for role, value in drawn.items()}


def sgd_step(model, params, x, y):
    """One step of MSE loss and plain SGD at LR, written out (no torch.optim, whose step imports
    torch._dynamo on real GPUs). Returns (the output, each of `params`' gradients) of the step, as
    they were before it updated the parameters."""
    out = model(x)
    loss = ((out - y.to(out.device)) ** 2).mean()
    loss.backward()
    grads = [p.grad for p in params]
    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                p -= LR * p.grad
                p.grad = None
    return out, grads
