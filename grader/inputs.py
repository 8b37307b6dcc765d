"""The grader's own weights and batches, drawn from the contract's seeds.

The runner copies them into the submission's model before calling it; the trusted side draws the
same tensors again to compute the reference, so no tensor the submission touched is needed to
know what the right answer is.
"""
import torch

from grader.contract import SHAPES


def _generator(seed):
    return torch.Generator().manual_seed(seed)


def weights(seed):
    """{role: float32 CPU tensor}: nn.Linear's own initialisation, U(-1/sqrt(in), 1/sqrt(in))."""
    generator, drawn = _generator(seed), {}
    for role, shape in SHAPES.items():
        fan_in = SHAPES["w1" if role in ("w1", "b1") else "w2"][1]
        bound = fan_in ** -0.5
        drawn[role] = (torch.rand(shape, generator=generator) * 2 - 1) * bound
    return drawn


def batch(seed, size):
    """(x, y): an input batch and a target, float32 on the CPU."""
    generator = _generator(seed + 1000)
    return torch.randn(size, 1000, generator=generator), torch.randn(size, 1000, generator=generator)
