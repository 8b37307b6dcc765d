"""Backward passes on virtual GPUs: every gradient is made on the GPU of the tensor it belongs to
(so memory_allocated counts it at once), and what autograd calls back (tensor and module hooks, a
custom Function's backward, saved-tensor hooks) sees the virtual devices, as on real GPUs."""
import functools

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from grader.devices import tensors_in

CPU = torch.device("cpu")
SOURCE = "grader.virtual source"  # a copy's autograd node: where its input lived
COPIES = (torch.ops.aten._to_copy.default, torch.ops.aten.clone.default)  # what a copy's backward makes


def mark_copy(out, source, first=0):
    """Send the gradients of a copy's inputs from `first` on (0 for `.to()`, 1 for an in-place
    copy into `out`) back to `source`, where the copy's input lived, as a copy of their own: on a
    CPU-only torch the copy's backward is a no-op that would keep them on the copy's GPU."""
    if isinstance(out, torch.Tensor) and out.grad_fn is not None:
        out.grad_fn.metadata[SOURCE] = source
        out.grad_fn.register_hook(lambda grad_inputs, _: _copied_back(grad_inputs, first))


def _copied_back(grads, first):
    with torch._C.DisableTorchFunction():  # the runtime's copy, not the submission's op; _Gradients places it
        return tuple(g.clone() if g is not None and n >= first else g for n, g in enumerate(grads))


def install(gpus, patcher):
    """Run autograd's engine (for backward() and torch.autograd.grad) with the runtime on.

    The runtime's mode hands those calls on with itself off, as torch does for every call a mode
    handles; the engine is entered below that hand-off, so the mode is turned back on there."""
    run = torch.autograd._engine_run_backward
    gradients = _gradients_mode(gpus)

    @functools.wraps(run)
    def engine(outputs, grads, *args, **kwargs):
        with gpus.on(), gradients():
            return run(outputs, tuple(_on_gpu_of(gpus, grad, output) for output, grad in zip(outputs, grads)),
                       *args, **kwargs)

    patcher.setattr(torch.autograd, "_engine_run_backward", engine)
    hooks = torch.autograd.graph.saved_tensors_hooks
    patcher.setattr(hooks, "__init__", _saved_tensors_hooks_on(gpus, hooks.__init__))


def _saved_tensors_hooks_on(gpus, init):
    """saved_tensors_hooks (save_on_cpu, activation checkpointing) whose hooks see the virtual
    devices: torch packs a saved tensor inside the op that saves it, where the mode is off."""
    def on(hook):
        @functools.wraps(hook)
        def under_runtime(tensor):
            with gpus.on():
                return hook(tensor)

        return under_runtime

    @functools.wraps(init)
    def with_runtime(self, pack_hook, unpack_hook):
        init(self, on(pack_hook), on(unpack_hook))

    return with_runtime


def _on_gpu_of(gpus, grad, output):
    """The gradient the pass starts from (`ones_like(loss)`, made while the runtime was off) on its
    output's GPU: a copy, so that a tensor of the submission's own never changes GPU."""
    if not (isinstance(grad, torch.Tensor) and isinstance(output, torch.Tensor)):
        return grad
    device = gpus.placement(output)
    if device.type != "cuda" or gpus.placement(grad).type != "cpu":
        return grad
    with torch._C.DisableTorchFunction():
        grad = grad.clone()
    gpus.settle(grad, device)
    return grad


def _gradients_mode(gpus):
    """The mode on the dispatch stack while the backward pass runs (where a submission's tensor
    hooks run too): it places each tensor the pass makes on the GPU of the tensors it was made
    from, and a copy's gradient where the copy's input lived (a view, or an in-place result, keeps
    its home). The runtime lives in this closure, not on the mode."""

    def device(func, inputs):
        node = torch._C._current_autograd_node()
        if func in COPIES and node is not None and SOURCE in node.metadata:
            return node.metadata[SOURCE]
        for tensor in inputs:
            placed = gpus.placement(tensor)
            if placed.type == "cuda":
                return placed
        return CPU

    class Gradients(TorchDispatchMode):
        @classmethod
        def _should_skip_dynamo(cls):
            return False  # else torch wraps __torch_dispatch__ in a guard that imports torch._dynamo (a second)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            with torch._C.DisableTorchFunction():  # an aten op, not the submission's call: the runtime's mode is off,
                out = func(*args, **(kwargs or {}))  # for its own bookkeeping too
                inputs = tensors_in(args, kwargs)
                gpus.settle_created(out, inputs, device(func, inputs))
            return out

    return Gradients
