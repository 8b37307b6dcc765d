"""Each op's outputs are placed where torch puts them, as the op makes them, and each op follows
torch's device rule for its kind (element-wise with CPU scalars, indexing, like-another,
from-data, views, collectives), as on two real CUDA GPUs."""
import numpy as np
import pytest
import torch
import torch.cuda.comm
import torch.nn as nn

D0, D1, CPU = torch.device("cuda:0"), torch.device("cuda:1"), torch.device("cpu")
MIXED = "Expected all tensors to be on the same device, but found at least two devices"


def test_as_tensor_of_a_cpu_tensor_copies_it_to_the_gpu(virtual_gpus):
    x = torch.zeros(3)
    y = torch.as_tensor(x, device="cuda:1")
    y += 1
    assert (y.device, x.device) == (D1, CPU)
    assert x.tolist() == [0.0, 0.0, 0.0] and y.tolist() == [1.0, 1.0, 1.0]
    assert torch.cuda.memory_allocated(1) == 512  # one block of the caching allocator
    w = torch.ones(2, device=D1)
    assert torch.as_tensor(w, device="cuda:1") is w  # already there: the tensor itself, as on CUDA


def test_as_tensor_of_a_numpy_array_does_not_share_its_memory(virtual_gpus):
    array = np.zeros(3, dtype=np.float32)
    for make in (torch.as_tensor, torch.asarray):
        y = make(array, device="cuda:0")
        array[0] = 5.0
        assert y.device == D0 and y.tolist() == [0.0, 0.0, 0.0]
        array[0] = 0.0


def test_adding_a_gpu_loss_into_a_cpu_total_fails(virtual_gpus):
    loss = torch.ones(2, device=D1).sum()
    total = torch.tensor(0.0)
    with pytest.raises(RuntimeError, match=f"{MIXED}, cuda:1 and cpu!"):
        total += loss
    assert total.device == CPU and total.item() == 0.0
    assert (total + loss).device == D1  # out of place, the CPU scalar joins the GPU's op


def test_an_out_tensor_on_another_device_fails_even_a_scalar(virtual_gpus):
    loss, out = torch.ones(2, device=D0).sum(), torch.tensor(0.0)
    with pytest.raises(RuntimeError, match=f"{MIXED}, cuda:0 and cpu!"):
        torch.mul(loss, 2, out=out)
    with pytest.raises(RuntimeError, match=f"{MIXED}, cuda:0 and cpu!"):
        out.mul_(loss)
    assert out.device == CPU and out.item() == 0.0


def test_checkpointing_with_dropout_runs_as_on_gpus(virtual_gpus):
    block = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5), nn.ReLU()).to(D0)
    x = torch.randn(8, 4, device=D0, requires_grad=True)
    out = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
    out.sum().backward()
    assert out.device == D0 and x.grad.device == D0 and block[0].weight.grad.device == D0


def test_saved_tensor_hooks_see_the_gpu_of_what_an_op_makes_inside(virtual_gpus):
    seen = []
    x = torch.randn(4, device=D1, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: (seen.append(t.device), t)[1], lambda t: t):
        nn.functional.dropout(x, 0.5).sum().backward()
    assert seen and set(seen) == {D1}


def test_a_ternary_op_takes_no_cpu_scalar(virtual_gpus):
    """TensorIterator lets one CPU scalar join a binary op on a GPU; a ternary op (addcmul, addcdiv,
    clamp by tensors) builds without that allowance: any CPU tensor fails."""
    x = torch.ones(3, device=D1)
    with pytest.raises(RuntimeError, match=f"{MIXED}, cuda:1 and cpu!"):
        torch.addcmul(x, torch.tensor(2.0), torch.tensor(3.0))
    with pytest.raises(RuntimeError, match=f"{MIXED}, cuda:1 and cpu!"):
        x.addcdiv(x, torch.tensor(2.0))
    assert torch.addcmul(x, x, x).device == D1
    assert (x * torch.tensor(2.0)).device == D1 and torch.maximum(torch.tensor(0.0), x).device == D1
    assert (torch.tensor(2.0) * torch.tensor(3.0)).device == CPU
    assert torch.where(torch.ones(3, device=D0) > 0, torch.ones(3, device=D0), torch.tensor(0.0)).device == D0


def test_a_matmul_takes_no_cpu_scalar(virtual_gpus):
    w = torch.ones(3, 3, device=D0)
    with pytest.raises(RuntimeError, match=MIXED):
        torch.addmm(torch.tensor(1.0), w, w)


def test_indices_on_the_cpu_or_the_indexed_tensors_gpu(virtual_gpus):
    x = torch.arange(6.0, device=D0)
    assert x[torch.tensor([0, 2])].device == D0
    assert x[torch.tensor([0, 2], device=D0)].tolist() == [0.0, 2.0]
    assert x[x > 3].device == D0
    with pytest.raises(IndexError, match=r"indices should be either on cpu or on the same device as the indexed "
                                         r"tensor \(cuda:0\)"):
        x[torch.tensor([0, 2], device=D1)]
    with pytest.raises(IndexError, match=r"\(cpu\)"):
        torch.arange(6.0)[torch.tensor([1], device=D1)]
    x.index_put_((torch.tensor([1]),), torch.tensor(9.0))  # CPU indices, a CPU scalar value
    assert x.device == D0 and x[1].item() == 9.0


def test_type_as_takes_the_other_tensors_device(virtual_gpus):
    w = torch.ones(3, device=D1, dtype=torch.float64)
    x = torch.ones(3).type_as(w)
    assert (x.device, x.dtype) == (D1, torch.float64)
    assert (x * w).device == D1
    ones = torch.ones(3)
    assert ones.type_as(torch.zeros(1)) is ones and ones.device == CPU


def test_a_tensor_of_gpu_losses_reads_their_values_onto_the_cpu(virtual_gpus):
    loss0, loss1 = torch.tensor(1.5, device=D0), torch.tensor(2.5, device=D1)
    both = torch.tensor([loss0, loss1])
    assert both.device == CPU and both.tolist() == [1.5, 2.5]
    assert [e.device for e in virtual_gpus.trace.of("sync")][-2:] == ["cuda:0", "cuda:1"]  # each read waits
    with pytest.warns(UserWarning, match="To copy construct from a tensor"):  # torch's own advice
        assert torch.tensor(loss1).device == D1  # a tensor's copy stays where the tensor is


def test_a_view_of_a_cpu_scalar_stays_on_the_cpu(virtual_gpus):
    scalar = torch.tensor(2.0)
    a, b = torch.broadcast_tensors(torch.ones(3, device=D0), scalar)
    assert (a.device, b.device, scalar.device) == (D0, CPU, CPU)


def test_broadcast_coalesced_needs_its_tensors_on_the_first_device(virtual_gpus):
    t = torch.ones(2, device=D1)
    with pytest.raises(RuntimeError, match=r"All tensors must be on devices\[0\]: 0"):
        torch.cuda.comm.broadcast_coalesced([t], [0, 1])
    first, second = torch.cuda.comm.broadcast_coalesced([t], [1, 0])
    assert first[0] is t and second[0].device == D0
