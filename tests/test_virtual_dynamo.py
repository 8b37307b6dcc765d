"""Optimizers on virtual GPUs never import torch._dynamo (grader/virtual/dynamo.py), and step as
torch's own do: the same weights, grad mode as torch's wrapper leaves it."""
import subprocess
import sys

import torch
from corpus import ROOT

from grader.virtual import virtual_gpus

TRAINS = """
import sys, torch
from grader.virtual import virtual_gpus
with virtual_gpus(2):
    model = torch.nn.Linear(10, 10).to("cuda:1")
    for make in (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW):
        optimizer = make(model.parameters(), lr=0.1)
        for _ in range(2):
            optimizer.zero_grad()
            model(torch.randn(4, 10, device="cuda:1")).square().mean().backward()
            optimizer.step()
        optimizer.load_state_dict(optimizer.state_dict())
print("torch._dynamo" in sys.modules)
"""


def test_training_on_virtual_gpus_imports_no_compiler():
    run = subprocess.run([sys.executable, "-c", TRAINS], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.stdout.strip() == "False", run.stdout + run.stderr


def _trained(device, grad_mode):
    torch.manual_seed(0)
    model = torch.nn.Linear(6, 3).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.randn(5, 6).to(device)).square().mean().backward()
        with torch.set_grad_enabled(grad_mode):
            optimizer.step()
            after = torch.is_grad_enabled()
    return [p.detach().cpu() for p in model.parameters()], after


def test_a_step_on_virtual_gpus_is_torchs_own():
    """The same weights as on the CPU, and the caller's grad mode kept; SGD is hooked by then (a
    first instance outside the runtime), as in any process that trained before."""
    plain = _trained("cpu", True)
    with virtual_gpus(2):
        virtual, mode_kept = _trained("cuda:1", True)
        _, off_kept = _trained("cuda:1", False)
    assert all(torch.equal(a, b) for a, b in zip(plain[0], virtual))
    assert mode_kept is True and off_kept is False
