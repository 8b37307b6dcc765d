"""Correct, written differently: raw parameters made with device=, F.linear, CUDA events."""
import torch
import torch.nn.functional as F
from torch import nn

device0 = torch.device("cuda", 0)
device1 = torch.device("cuda", 1)


class SimpleMPModel(nn.Module):
    def __init__(self):
        super().__init__()
        first, second = nn.Linear(1000, 2000, device=device0), nn.Linear(2000, 1000, device=device1)
        self.w_a, self.b_a = first.weight, first.bias
        self.w_b, self.b_b = second.weight, second.bias

    def forward(self, x, verbose=False):
        x = F.relu(F.linear(x.to(device0, non_blocking=True), self.w_a, self.b_a))
        if verbose:
            print("Before move:", x.device)
        x = x.to(self.w_b.device)
        if verbose:
            print("After move:", x.device)
        return F.relu(F.linear(x, self.w_b, self.b_b))


def train(model, x, y, steps=5, lr=0.01):
    optimizer = torch.optim.SGD(model.parameters(), lr)
    y = y.to(device1)
    out = []
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=False)
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        optimizer.step()
        out.append(loss.item())
    return out


def time_forward(model, x):
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    with torch.cuda.device(1):
        start.record()
        model(x)
        end.record()
    end.synchronize()
    return start.elapsed_time(end) / 1000


def profile_stages(model, x):
    ev = {k: torch.cuda.Event(enable_timing=True) for k in "abcdefgh"}
    x = x.to(device0)
    with torch.cuda.device(1):
        ev["g"].record()  # cuda:1 is idle: the forward starts now on its clock too
    with torch.cuda.device(0):
        ev["a"].record()
        h = F.relu(F.linear(x, model.w_a, model.b_a))
        ev["b"].record()
    with torch.cuda.device(1):
        ev["c"].record()
        h = h.to(device1)
        ev["d"].record()
        ev["e"].record()
        F.relu(F.linear(h, model.w_b, model.b_b))
        ev["f"].record()
        ev["h"].record()
    ev["h"].synchronize()
    ev["b"].synchronize()
    s0, s1 = ev["a"].elapsed_time(ev["b"]), ev["e"].elapsed_time(ev["f"])
    wall = ev["g"].elapsed_time(ev["h"])
    return {"stage0_ms": s0, "transfer_ms": ev["c"].elapsed_time(ev["d"]), "stage1_ms": s1, "wall_ms": wall,
            "idle_fraction": 1 - (s0 + s1) / (2 * wall),
            "memory_bytes": {f"cuda:{i}": torch.cuda.memory_allocated(i) for i in range(2)}}


class PipelinedMPModel(SimpleMPModel):
    def __init__(self, split_size=8):
        super().__init__()
        self.chunk = split_size

    def forward(self, x, verbose=False):
        parts = list(x.to(device0).split(self.chunk))
        moved = [None] * len(parts)
        out = []
        for i in range(len(parts) + 1):
            if i > 0:
                out.append(F.relu(F.linear(moved[i - 1], self.w_b, self.b_b)))
            if i < len(parts):
                moved[i] = F.relu(F.linear(parts[i], self.w_a, self.b_a)).to(device1)
        return torch.cat(out)
