"""Correct, written differently: an optimizer made every step, zero_grad(set_to_none=False),
`with torch.cuda.device(...)` blocks, a stream synchronize, perf_counter_ns, .to(device, non_blocking),
and a pipeline on explicit streams and events."""
from time import perf_counter_ns

import torch
import torch.nn.functional as F
from torch import nn

GPU0, GPU1 = "cuda:0", "cuda:1"


class SimpleMPModel(nn.Module):
    def __init__(self):
        super().__init__()
        with torch.cuda.device(0):
            self.front = nn.Linear(1000, 2000).cuda()
        with torch.cuda.device(1):
            self.back = nn.Linear(2000, 1000).cuda()

    def forward(self, x, verbose=False):
        hidden = F.relu(self.front(x.to(GPU0, non_blocking=True)))
        if verbose:
            print("Before move:", hidden.device)
        hidden = hidden.to(GPU1, non_blocking=True)
        if verbose:
            print("After move:", hidden.device)
        return F.relu(self.back(hidden))


def train(model, x, y, steps=5, lr=0.01):
    y = y.to(GPU1)
    losses = []
    for _ in range(steps):
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)  # plain SGD keeps no state between steps
        optimizer.zero_grad(set_to_none=False)
        loss = F.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def time_forward(model, x):
    begin = perf_counter_ns()
    model(x)
    torch.cuda.current_stream(1).synchronize()
    return (perf_counter_ns() - begin) / 1e9


def profile_stages(model, x):
    marks = [torch.cuda.Event(enable_timing=True) for _ in range(6)]
    x = x.to(GPU0)
    torch.cuda.synchronize(0)
    torch.cuda.synchronize(1)
    begin = perf_counter_ns()
    with torch.cuda.device(0):
        marks[0].record()
        hidden = F.relu(model.front(x))
        marks[1].record()
    with torch.cuda.device(1):
        marks[2].record()
        hidden = hidden.to(GPU1)
        marks[3].record()
        F.relu(model.back(hidden))
        marks[4].record()
    torch.cuda.synchronize(0)
    torch.cuda.synchronize(1)
    wall_ms = (perf_counter_ns() - begin) / 1e6
    stage0, transfer = marks[0].elapsed_time(marks[1]), marks[2].elapsed_time(marks[3])
    stage1 = marks[3].elapsed_time(marks[4])
    return {"stage0_ms": stage0, "transfer_ms": transfer, "stage1_ms": stage1, "wall_ms": wall_ms,
            "idle_fraction": 1 - (stage0 + stage1) / (2 * wall_ms),
            "memory_bytes": {"cuda:0": torch.cuda.memory_allocated(0), "cuda:1": torch.cuda.memory_allocated(1)}}


class PipelinedMPModel(SimpleMPModel):
    """Each stage on a stream of its own: cuda:1 waits for an event of cuda:0's stream per
    micro-batch, never for the host."""

    def __init__(self, split_size=8):
        super().__init__()
        self.split_size = split_size
        self.streams = torch.cuda.Stream(device=0), torch.cuda.Stream(device=1)

    def forward(self, x, verbose=False):
        front, back = self.streams
        front.wait_stream(torch.cuda.current_stream(0))
        back.wait_stream(torch.cuda.current_stream(1))
        outputs = []
        for chunk in x.to(GPU0).split(self.split_size):
            with torch.cuda.stream(front):
                hidden = F.relu(self.front(chunk))
                ready = torch.cuda.Event()
                ready.record(front)
            with torch.cuda.stream(back):
                back.wait_event(ready)
                hidden = hidden.to(GPU1, non_blocking=True)
                hidden.record_stream(back)
                outputs.append(F.relu(self.back(hidden)))
        torch.cuda.current_stream(1).wait_stream(back)
        return torch.cat(outputs)
