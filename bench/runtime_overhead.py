"""The virtual runtime's overhead on the lab's 5-step training at batch 32, as a ratio to the same
training on plain CPU tensors, both measured in this run. Run: python bench/runtime_overhead.py"""
import os
import statistics
import sys
import time

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from grader.virtual import virtual_gpus


def train(first, second):
    """The handout's Part 2 loop with devices given, so both runs do the same arithmetic."""
    model = nn.ModuleDict({"a": nn.Linear(1000, 2000).to(first), "b": nn.Linear(2000, 1000).to(second)})
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    x, y = torch.randn(32, 1000), torch.randn(32, 1000).to(second)
    for _ in range(5):
        out = torch.relu(model["b"](torch.relu(model["a"](x.to(first))).to(second)))
        loss = nn.functional.mse_loss(out, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        loss.item()


def medians(runs, repeats):
    """The median seconds of each run, the runs taken in turn, so that a change in the machine's
    load falls on all of them alike."""
    times = [[] for _ in runs]
    for _ in range(repeats):
        for run, taken in zip(runs, times):
            start = time.perf_counter()
            run()
            taken.append(time.perf_counter() - start)
    return [statistics.median(taken) for taken in times]


if __name__ == "__main__":
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 31
    cpu = "cpu"
    train(cpu, cpu)  # warm-up: lazy imports, allocator

    def virtual():
        with virtual_gpus(2):
            train(torch.device("cuda:0"), torch.device("cuda:1"))

    virtual()  # warm-up of the runtime's own lazy imports
    plain, on_virtual = medians([lambda: train(cpu, cpu), virtual], repeats)
    print(f"plain CPU training: {plain * 1000:.1f} ms")
    print(f"virtual two-GPU training: {on_virtual * 1000:.1f} ms")
    print(f"ratio: {on_virtual / plain:.2f}x (target 1.5x)")
