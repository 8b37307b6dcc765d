"""Practical 8: layer-wise model parallelism in PyTorch.

Fill in the TODOs, following the handout (Parts 1-5; Part 6 is an optional bonus). Keep every
name below: the grader calls them.
Check your work with `pytest grader/` (it runs on two real GPUs, or on virtual ones if your
machine has fewer), and run the handout's demo with `python starter/model.py`.
"""
import time  # noqa: F401 - for Parts 4 and 5

import torch
import torch.nn as nn
import torch.optim as optim  # noqa: F401 - for Part 2

device0 = torch.device("cuda:0")
device1 = torch.device("cuda:1")


class SimpleMPModel(nn.Module):
    def __init__(self):
        """Part 1. Put the first half of the network on GPU 0 and the second half on GPU 1:

        Linear(1000, 2000) + ReLU on device0, then Linear(2000, 1000) + ReLU on device1.
        Model parallelism splits the *model* across GPUs: each GPU holds only its layers'
        weights, which is how a model too large for one GPU's memory can still be trained.
        """
        super().__init__()
        raise NotImplementedError("TODO Part 1: build the two layers, each on its GPU (handout Part 1)")

    def forward(self, x, verbose=False):
        """Part 1 and Part 3. Run x (it may arrive on the CPU) through both halves.

        Computation starts on GPU 0, so first move x to device0. After the first ReLU, move the
        activation to device1 with `.to(device1)`: that copy is the only communication between
        the GPUs, and the final output stays on GPU 1. Part 3: when `verbose` is true, print
        "Before move:" and "After move:" each followed by the activation's device, just before
        and just after that copy; print nothing otherwise.
        """
        raise NotImplementedError("TODO Part 1/3: forward through both GPUs (handout Parts 1 and 3)")


def train(model, x, y, steps=5, lr=0.01):
    """Part 2. Train on the batch (x, y) for `steps` SGD steps with MSELoss; return the losses.

    The loss is computed where the output is, on the last GPU, so move the target y to device1
    first. Each step: forward, loss, optimizer.zero_grad(), loss.backward(), optimizer.step().
    Autograd sends each gradient back to the GPU of its parameter. Return a list of `steps`
    floats (loss.item() of each step, taken before that step's update).
    """
    raise NotImplementedError("TODO Part 2: the training loop (handout Part 2)")


def time_forward(model, x):
    """Part 4. Return the seconds one forward pass takes, all GPU work included.

    CUDA calls return as soon as the work is queued, so a clock read right after model(x)
    measures the queueing, not the computation. Call torch.cuda.synchronize() before reading the
    end clock, and make it wait for the GPU that finishes last: without a device it waits only
    for the current GPU (cuda:0), while the output is computed on cuda:1.
    """
    raise NotImplementedError("TODO Part 4: time one forward pass (handout Part 4)")


def profile_stages(model, x):
    """Part 5. See the idle GPU: time one forward stage by stage and return a dict of

        stage0_ms      layer1 + ReLU on cuda:0 (CUDA events recorded on cuda:0)
        transfer_ms    the .to(device1) copy (events recorded on cuda:1)
        stage1_ms      layer2 + ReLU on cuda:1 (events recorded on cuda:1)
        wall_ms        the whole forward, clock read after synchronizing both GPUs
        idle_fraction  1 - (stage0_ms + stage1_ms) / (2 * wall_ms): how much of the time a GPU sits idle
        memory_bytes   {"cuda:0": torch.cuda.memory_allocated(0), "cuda:1": ...(1)}

    An event's time can be read (`start.elapsed_time(end)`) only after the host has waited for
    it: synchronize first. The memory figures show what model parallelism buys: each GPU holds
    only its own layer's weights.
    """
    raise NotImplementedError("TODO Part 5: time the stages with CUDA events")


class PipelinedMPModel(SimpleMPModel):
    """Part 6 (optional, bonus). The same two layers, but forward splits the batch into
    micro-batches of `split_size` rows and keeps both GPUs busy: while cuda:1 computes
    micro-batch i, cuda:0 computes micro-batch i+1 (the fix the next lecture teaches, GPipe).
    The outputs and gradients must equal SimpleMPModel's with the same weights.
    `python -m grader.timeline` draws both models' timelines, one above the other.
    """

    def __init__(self, split_size=8):
        super().__init__()
        self.split_size = split_size

    def forward(self, x, verbose=False):
        raise NotImplementedError("TODO Part 6 (bonus): pipeline the micro-batches")


def demo():
    """The handout's demo: output device, five losses, the move, the forward time."""
    model = SimpleMPModel()
    x = torch.randn(32, 1000)
    print("Output device:", model(x).device)
    for step, loss in enumerate(train(model, x, torch.randn(32, 1000))):
        print(f"Step {step}, Loss: {loss:.4f}")
    model(x, verbose=True)
    print("Forward time:", time_forward(model, x))
    print("Stages:", profile_stages(model, x))


if __name__ == "__main__":
    from grader.virtual import unless_two_gpus  # virtual GPUs where fewer than two exist

    with unless_two_gpus():
        demo()
