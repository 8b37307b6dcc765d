"""Correct, written differently: nn.Sequential stages, .cuda(i), time.time, a device context."""
import time

import torch
from torch import nn, optim

device0 = torch.device("cuda:0")
device1 = torch.device("cuda:1")


class SimpleMPModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.stage0 = nn.Sequential(nn.Linear(1000, 2000), nn.ReLU()).cuda(0)
        self.stage1 = nn.Sequential(nn.Linear(2000, 1000), nn.ReLU()).cuda(1)

    def forward(self, x, verbose=False):
        h = self.stage0(x.cuda(0))
        if verbose:
            print(f"Before move: {h.device}")
        h = h.cuda(1)
        if verbose:
            print(f"After move: {h.device}")
        return self.stage1(h)


def train(model, x, y, steps=5, lr=0.01):
    opt = optim.SGD(model.parameters(), lr=lr)
    target = y.cuda(1)
    history = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), target)
        loss.backward()
        opt.step()
        history.append(float(loss))
    return history


def time_forward(model, x):
    t0 = time.time()
    model(x)
    with torch.cuda.device(1):
        torch.cuda.synchronize()
    return time.time() - t0


def profile_stages(model, x):
    tick = {}
    stamps = [torch.cuda.Event(enable_timing=True) for _ in range(6)]
    for gpu in (0, 1):
        torch.cuda.synchronize(gpu)
    t0 = time.perf_counter_ns()
    with torch.cuda.device(0):
        stamps[0].record()
        h = model.stage0(x.cuda(0))
        stamps[1].record()
    with torch.cuda.device(1):
        stamps[2].record()
        h = h.cuda(1)
        stamps[3].record()
        model.stage1(h)
        stamps[4].record()
    for gpu in (0, 1):
        torch.cuda.synchronize(gpu)
    tick["wall_ms"] = (time.perf_counter_ns() - t0) / 1e6
    tick["stage0_ms"] = stamps[0].elapsed_time(stamps[1])
    tick["transfer_ms"] = stamps[2].elapsed_time(stamps[3])
    tick["stage1_ms"] = stamps[3].elapsed_time(stamps[4])
    tick["idle_fraction"] = 1.0 - (tick["stage0_ms"] + tick["stage1_ms"]) / (2.0 * tick["wall_ms"])
    tick["memory_bytes"] = {"cuda:0": torch.cuda.memory_allocated(0), "cuda:1": torch.cuda.memory_allocated(1)}
    return tick


class PipelinedMPModel(nn.Module):
    def __init__(self, split_size=8):
        super().__init__()
        self.split_size = split_size
        self.stage0 = nn.Sequential(nn.Linear(1000, 2000), nn.ReLU()).cuda(0)
        self.stage1 = nn.Sequential(nn.Linear(2000, 1000), nn.ReLU()).cuda(1)

    def forward(self, x, verbose=False):
        pending, results = None, []
        for part in x.cuda(0).split(self.split_size):
            if pending is not None:
                results.append(self.stage1(pending))
            pending = self.stage0(part).cuda(1)
        results.append(self.stage1(pending))
        return torch.cat(results)
