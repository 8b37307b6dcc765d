"""Virtual two-GPU runtime: the lab's code runs unmodified where fewer than two GPUs exist.

    with virtual_gpus(n=2) as gpus:
        model = SimpleMPModel()          # cuda:0 and cuda:1 exist, backed by the CPU
        print(gpus.trace.of("transfer"))

Outside the block torch is exactly as before. See README.md, "Virtual mode", for what it does not
model.
"""
import contextlib
import sys

import torch

from grader.devices import active
from grader.trace import Trace
from grader.virtual.cuda import VirtualCuda
from grader.virtual.gpus import VirtualGPUs

__all__ = ["virtual_gpus", "unless_two_gpus", "VirtualGPUs"]


def virtual_gpus(n=2, trace=None, namespaces=()):
    """Make `n` virtual CUDA GPUs exist; record their work in `trace` (a fresh one if None).

    `namespaces`: module dicts whose own clock references are recorded (see devices.active).
    """
    gpus = VirtualGPUs(n, trace if trace is not None else Trace())
    return active(gpus, VirtualCuda(gpus).install, namespaces)


@contextlib.contextmanager
def unless_two_gpus():
    """Real GPUs when two are visible, else virtual ones, saying so: for running the lab's demo."""
    if torch.cuda.device_count() >= 2:
        yield None
        return
    print("[fewer than two CUDA GPUs: running on virtual GPUs backed by the CPU]", file=sys.stderr)
    with virtual_gpus(2) as gpus:
        yield gpus
