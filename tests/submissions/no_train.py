"""Bug: train is missing."""
import time

import torch
import torch.nn as nn
import torch.optim as optim

device0 = torch.device("cuda:0")
device1 = torch.device("cuda:1")


class SimpleMPModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer1 = nn.Linear(1000, 2000).to(device0)
        self.relu1 = nn.ReLU().to(device0)
        self.layer2 = nn.Linear(2000, 1000).to(device1)
        self.relu2 = nn.ReLU().to(device1)

    def forward(self, x, verbose=False):
        x = x.to(device0)
        x = self.relu1(self.layer1(x))
        if verbose:
            print("Before move:", x.device)
        x = x.to(device1)
        if verbose:
            print("After move:", x.device)
        return self.relu2(self.layer2(x))


def trian(model, x, y, steps=5, lr=0.01):
    optimizer = optim.SGD(model.parameters(), lr=lr)
    loss_fn = nn.MSELoss()
    y = y.to(device1)
    losses = []
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def time_forward(model, x):
    start = time.perf_counter()
    model(x)
    torch.cuda.synchronize(device1)
    return time.perf_counter() - start

