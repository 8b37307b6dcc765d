"""Correct, written the way a careful GPU programmer writes: an in-place ReLU (clamp_), a hand-written
SGD step that clears each gradient (p.grad = None, as torch.optim's set_to_none does), losses kept
on the GPU and read once at the end, warm-ups before every timing, torch.accelerator's synchronize,
time.time_ns, the mean of several passes, and a pipeline queued from one list."""
import time

import torch
from torch import nn

GPU0, GPU1 = torch.device("cuda", 0), torch.device("cuda", 1)


class SimpleMPModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(1000, 2000, device=GPU0)
        self.decoder = nn.Linear(2000, 1000, device=GPU1)

    def stage0(self, x):
        return self.encoder(x.to(GPU0)).clamp_(min=0)

    def stage1(self, h):
        return self.decoder(h).clamp_(min=0)

    def forward(self, x, verbose=False):
        h = self.stage0(x)
        if verbose:
            print("Before move:", h.device)
        h = h.to(GPU1)
        if verbose:
            print("After move:", h.device)
        return self.stage1(h)


def train(model, x, y, steps=5, lr=0.01):
    target = y.to(GPU1)
    losses = []
    for _ in range(steps):
        loss = ((model(x) - target) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
                p.grad = None
        losses.append(loss.detach())
    return torch.stack(losses).cpu().tolist()  # one read of the GPU, at the end


def time_forward(model, x, passes=3):
    with torch.no_grad():
        model(x)  # warm-up, not timed
        torch.accelerator.synchronize(GPU1)
        start = time.time_ns()
        for _ in range(passes):
            model(x)
        torch.accelerator.synchronize(GPU1)
        return (time.time_ns() - start) / passes / 1e9


def profile_stages(model, x):
    x = x.to(GPU0)
    with torch.no_grad():
        model(x)  # warm-up
        events = [torch.cuda.Event(enable_timing=True) for _ in range(6)]
        torch.cuda.synchronize(GPU0)
        torch.cuda.synchronize(GPU1)
        begin = time.perf_counter_ns()
        events[0].record(torch.cuda.current_stream(GPU0))
        h = model.stage0(x)
        events[1].record(torch.cuda.current_stream(GPU0))
        events[2].record(torch.cuda.current_stream(GPU1))
        h = h.to(GPU1)
        events[3].record(torch.cuda.current_stream(GPU1))
        events[4].record(torch.cuda.current_stream(GPU1))
        model.stage1(h)
        events[5].record(torch.cuda.current_stream(GPU1))
        torch.accelerator.synchronize(GPU1)
        wall = (time.perf_counter_ns() - begin) / 1e6
        torch.accelerator.synchronize(GPU0)
    stage0, transfer, stage1 = (events[i].elapsed_time(events[i + 1]) for i in (0, 2, 4))
    return {"stage0_ms": stage0, "transfer_ms": transfer, "stage1_ms": stage1, "wall_ms": wall,
            "idle_fraction": 1 - (stage0 + stage1) / (2 * wall),
            "memory_bytes": {f"cuda:{i}": torch.cuda.memory_allocated(i) for i in (0, 1)}}


class PipelinedMPModel(SimpleMPModel):
    def __init__(self, split_size=8):
        super().__init__()
        self.split_size = split_size

    def forward(self, x, verbose=False):
        moved, outputs = None, []
        for chunk in x.split(self.split_size):
            ahead = self.stage0(chunk).to(GPU1)  # cuda:0 takes the next micro-batch ...
            if moved is not None:
                outputs.append(self.stage1(moved))  # ... while cuda:1 computes the one before
            moved = ahead
        outputs.append(self.stage1(moved))
        return torch.cat(outputs)
