"""The virtual runtime's overhead on the lab's 5-step training at batch 32, as a ratio to the same
training on plain CPU tensors, the two taken in turn in this run (medians of 31), both on one torch
thread as every probe runs (grader.sandbox.runner.Limits.threads): with two, the floor is the
machine's contention as much as the lab's arithmetic. Target: 1.2x.
Run: python bench/runtime_overhead.py [REPEATS]"""
import sys

import torch
import torch.nn as nn
from measure import ROOT, medians, report

sys.path.insert(0, ROOT)
from grader.virtual import virtual_gpus

TARGET = 1.2


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


def ratio(repeats=31):
    torch.set_num_threads(1)
    cpu = "cpu"
    train(cpu, cpu)  # warm-up: lazy imports, allocator

    def virtual():
        with virtual_gpus(2):
            train(torch.device("cuda:0"), torch.device("cuda:1"))

    virtual()  # warm-up of the runtime's own lazy imports
    plain, on_virtual = medians([lambda: train(cpu, cpu), virtual], repeats)
    return report("virtual two-GPU training", on_virtual, "plain CPU training", plain, TARGET)


if __name__ == "__main__":
    ratio(int(sys.argv[1]) if len(sys.argv) > 1 else 31)
