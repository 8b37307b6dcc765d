"""Virtual two-GPU runtime: the lab's code runs unmodified where fewer than two GPUs exist.

    with virtual_gpus(n=2) as gpus:
        model = SimpleMPModel()          # cuda:0 and cuda:1 exist, backed by the CPU
        print(gpus.trace.of("transfer"))

Outside the block torch is exactly as before. See README.md, "Virtual mode", for what it does not
model.
"""
import contextlib
import pathlib
import sys

import torch

from grader.devices import active
from grader.trace import Trace
from grader.virtual import autograd, comm, dynamo, refusals, torch_api
from grader.virtual.cuda import VirtualCuda
from grader.virtual.gpus import VirtualGPUs
from grader.virtual.memory import CAPACITY

__all__ = ["virtual_gpus", "unless_two_gpus", "VirtualGPUs", "CAPACITY"]


def virtual_gpus(n=2, trace=None, namespaces=(), capacity=CAPACITY):
    """Make `n` virtual CUDA GPUs of `capacity` bytes each exist; record their work in `trace` (a
    fresh one if None).

    `namespaces`: module dicts that ran before the runtime, whose names for what it replaces are
    rebound (see devices.active).
    """
    gpus = VirtualGPUs(n, trace if trace is not None else Trace(), capacity)
    cuda = VirtualCuda(gpus)

    def install(patcher):
        cuda.install(patcher)
        gpus.random.install(patcher)
        torch_api.install(gpus, patcher)
        comm.install(gpus, patcher)
        autograd.install(gpus, patcher)
        refusals.install(patcher)
        dynamo.install(patcher)

    return active(gpus, install, namespaces)


@contextlib.contextmanager
def unless_two_gpus():
    """Real GPUs when two are visible, else virtual ones, saying so: for running the lab's demo."""
    if torch.cuda.device_count() >= 2:
        yield None
        return
    print("[fewer than two CUDA GPUs: running on virtual GPUs backed by the CPU]", file=sys.stderr)
    with virtual_gpus(2, namespaces=_program_modules()) as gpus:
        yield gpus


def _program_modules():
    """The namespaces of the running script and the modules beside it: their module-level
    `from torch.cuda import Event` ran before the runtime started, and is rebound to it."""
    main = sys.modules.get("__main__")
    if getattr(main, "__file__", None) is None:
        return []
    folder = pathlib.Path(main.__file__).resolve().parent
    return [vars(module) for module in list(sys.modules.values())
            if getattr(module, "__file__", None) and pathlib.Path(module.__file__).resolve().parent == folder]
