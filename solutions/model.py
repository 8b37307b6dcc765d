"""Reference solution of the lab (Practical 8: layer-wise model parallelism)."""
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


def train(model, x, y, steps=5, lr=0.01):
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


def profile_stages(model, x):
    """Part 5: one forward, timed stage by stage with CUDA events on the GPU doing the work."""
    timing = {name: torch.cuda.Event(enable_timing=True) for name in
              ("stage0_start", "stage0_end", "transfer_start", "transfer_end", "stage1_start", "stage1_end")}
    x = x.to(device0)
    torch.cuda.synchronize(device0)
    torch.cuda.synchronize(device1)
    start = time.perf_counter()
    with torch.cuda.device(device0):
        timing["stage0_start"].record()
        h = model.relu1(model.layer1(x))
        timing["stage0_end"].record()
    with torch.cuda.device(device1):
        timing["transfer_start"].record()
        h = h.to(device1)
        timing["transfer_end"].record()
        timing["stage1_start"].record()
        model.relu2(model.layer2(h))
        timing["stage1_end"].record()
    torch.cuda.synchronize(device0)
    torch.cuda.synchronize(device1)
    wall_ms = (time.perf_counter() - start) * 1000
    figures = {
        "stage0_ms": timing["stage0_start"].elapsed_time(timing["stage0_end"]),
        "transfer_ms": timing["transfer_start"].elapsed_time(timing["transfer_end"]),
        "stage1_ms": timing["stage1_start"].elapsed_time(timing["stage1_end"]),
        "wall_ms": wall_ms,
    }
    figures["idle_fraction"] = 1 - (figures["stage0_ms"] + figures["stage1_ms"]) / (2 * wall_ms)
    figures["memory_bytes"] = {str(d): torch.cuda.memory_allocated(d) for d in (device0, device1)}
    return figures


class PipelinedMPModel(SimpleMPModel):
    """Part 6 (bonus): the same layers, fed micro-batches of `split_size` rows, so that cuda:0
    computes micro-batch i+1 while cuda:1 computes micro-batch i (GPipe-style)."""

    def __init__(self, split_size=8):
        super().__init__()
        self.split_size = split_size

    def forward(self, x, verbose=False):
        chunks = iter(x.to(device0).split(self.split_size))
        moved = self.relu1(self.layer1(next(chunks))).to(device1)
        outputs = []
        for chunk in chunks:
            outputs.append(self.relu2(self.layer2(moved)))  # queued on cuda:1 ...
            moved = self.relu1(self.layer1(chunk)).to(device1)  # ... while cuda:0 takes the next one
        outputs.append(self.relu2(self.layer2(moved)))
        return torch.cat(outputs)


def demo():
    model = SimpleMPModel()
    x = torch.randn(32, 1000)
    print("Output device:", model(x).device)
    for step, loss in enumerate(train(model, x, torch.randn(32, 1000))):
        print(f"Step {step}, Loss: {loss:.4f}")
    model(x, verbose=True)
    print("Forward time:", time_forward(model, x))
    print("Stages:", profile_stages(model, x))


if __name__ == "__main__":
    from grader.virtual import unless_two_gpus

    with unless_two_gpus():
        demo()
