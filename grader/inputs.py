"""The grader's own weights and batches, drawn from the contract's seeds with numpy's generator.

Both sides draw the same arrays: the runner copies them into the submission's model before calling
it, and the trusted side draws them again to compute the reference, so no tensor the submission
touched is needed to know what the right answer is, and the trusted side needs no torch.
"""
import numpy

from grader.contract import SHAPES


def _generator(seed):
    return numpy.random.default_rng(seed)


def weights(seed):
    """{role: float32 array}: nn.Linear's own initialisation, U(-1/sqrt(in), 1/sqrt(in))."""
    generator, drawn = _generator(seed), {}
    for role, shape in SHAPES.items():
        fan_in = SHAPES["w1" if role in ("w1", "b1") else "w2"][1]
        bound = numpy.float32(fan_in ** -0.5)
        value = generator.random(shape, dtype=numpy.float32)
        value *= 2  # (value * 2 - 1) * bound, in place: the same float32 arithmetic, no temporaries
        value -= 1
        value *= bound
        drawn[role] = value
    return drawn


def batch(seed, size):
    """(x, y): an input batch and a target, float32 arrays, read-only (each side keeps them for
    every use, and copies what it hands out)."""
    generator = _generator(seed + 1000)
    drawn = (generator.standard_normal((size, 1000), dtype=numpy.float32),
             generator.standard_normal((size, 1000), dtype=numpy.float32))
    for value in drawn:
        value.flags.writeable = False
    return drawn
