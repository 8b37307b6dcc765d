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
