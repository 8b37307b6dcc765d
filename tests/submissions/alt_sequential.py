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
