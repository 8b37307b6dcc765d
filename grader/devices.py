"""Recording what a submission does on its devices, shared by real and virtual GPUs.

`DeviceMode`, through the TorchFunctionMode it puts on torch's stack (its `front`), sees every
torch call the submission makes (functions, methods, attribute reads) and writes ops, transfers and
synchronizations into a `Trace`. On real GPUs it only watches (`real_gpus`); `grader.virtual` subclasses it to also say
where each tensor lives.
"""
import contextlib
import threading
import weakref

import torch
from torch.overrides import TorchFunctionMode

from grader.contract import HOST_READS
from grader.costs import flops
from grader.patching import Patcher
from grader.trace import VALUES_CAP

# Calls that reshape, name or inspect a tensor without computing anything: they are not ops in
# the trace, so `x.view(-1, 1000)` before `.to(device0)` does not count as computing on the CPU.
NON_COMPUTING = frozenset(
    """size dim numel nelement stride storage_offset element_size is_contiguous is_floating_point
    is_complex data_ptr untyped_storage view view_as reshape reshape_as flatten unflatten squeeze
    unsqueeze t transpose permute expand expand_as narrow select detach detach_ contiguous
    __getitem__ unbind split chunk __len__ __iter__ __hash__ __reduce_ex__
    __setstate__ __deepcopy__ requires_grad_ retain_grad register_hook register_post_accumulate_grad_hook
    float double half bfloat16 type backward grad broadcast_tensors broadcast_to""".split()
)
TRANSFERS = frozenset({"to", "cuda", "cpu", "copy_", "type_as"})  # type_as(other) is .to(other)
DEVICE = torch.device
NON_COMPUTING |= HOST_READS
# torch.Tensor's attributes as torch made them, read before any submission runs: an attribute read
# torch hands the runtime is answered by these, whatever the submission later puts in their place.
OWN_ATTRIBUTES = {name: value for cls in reversed(torch.Tensor.__mro__) for name, value in vars(cls).items()}
# torch's own getters of a tensor's device and gradient (C-level, through the mode where one is on):
# a property the submission puts on torch.Tensor, one that lies and removes itself before the
# tamper check, never answers the grader.
OWN_DEVICE, OWN_GRAD = torch._C.TensorBase.device.__get__, torch._C.TensorBase.grad.__get__


def cuda_index(device, current):
    """The GPU a device argument names, as real CUDA reads it: None and "cuda" mean the current one."""
    if device is None:
        return current
    if isinstance(device, int):
        return device
    device = DEVICE(device)
    if device.type != "cuda":
        raise ValueError(f"Expected a cuda device, but got: {device}")
    return current if device.index is None else device.index


def tensors_in(*trees):
    """The tensors in nested lists, tuples (named ones and torch's return types too) and dicts:
    called on every op's arguments and results, so a plain walk, not torch's general pytree."""
    found = []
    _collect(trees, found)
    return found


def _collect(value, found):
    if isinstance(value, torch.Tensor):
        found.append(value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _collect(item, found)
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, found)


def _own_accessor(func, name):
    """(torch's own `name` accessor, the attribute's name) for the accessor torch handed the mode:
    torch's own, or, where the submission put something of its own on torch.Tensor (a property
    that lies about a tensor's device, say), the one it replaced."""
    descriptor = func.__self__
    attr = getattr(descriptor, "__name__", None)
    if attr is not None and OWN_ATTRIBUTES.get(attr) is descriptor:  # torch's own getter: the common case
        return func, attr
    attr = next((a for a, value in vars(torch.Tensor).items() if value is descriptor), attr)
    own = OWN_ATTRIBUTES.get(attr)
    return (func, attr) if own is None else (getattr(own, name), attr)


def front(handler):
    """The mode torch's stack holds for a runtime: it hands every call to `handler` and keeps
    nothing else, so what a submission could find on the stack (torch.overrides' helpers show it)
    leads to neither the runtime nor its trace."""
    class Front(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            return handler(func, types, args, kwargs)

    return Front()


class DeviceMode:
    """Records every device-relevant torch call into `trace`; real GPUs do the work. Not a mode
    itself: what torch's mode stack holds is its `front`, which hands each call to it."""

    clock = None  # real GPUs: the clocks read as they are

    def __init__(self, trace):
        self.trace = trace
        self.front = front(self.__torch_function__)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in ("__get__", "__set__", "__delete__"):
            return self.attribute(*_own_accessor(func, name), args)
        if name in TRANSFERS:
            return self.transfer(func, name, args, kwargs)
        out = self.compute(func, name, args, kwargs)
        if name in HOST_READS and args and isinstance(args[0], torch.Tensor):
            self.host_read(name, args[0])
        return out

    def placement(self, tensor):
        return OWN_DEVICE(tensor)

    def attribute(self, func, attr, args):
        return func(*args)

    def host_read(self, name, tensor):
        """Reading a GPU value waits for its GPU's current stream (a `sync`); what was read (a
        scalar, or a small tensor's elements) is kept either way."""
        device = self.placement(tensor)
        fields = {**_read(tensor), "args": self.trace.flow([tensor]).get("args")}
        if device.type == "cuda":
            self.wait(name, device, **fields)
        elif fields["value"] is not None or fields["values"] is not None:
            self.trace.add("value", name, device=str(device), **fields)

    def wait(self, name, device, **fields):
        self.trace.add("sync", name, device=str(device), stream=self.stream(device), **fields)

    def stream(self, device):
        """The number of the stream work on `device` goes to now (None off the GPUs)."""
        return torch.cuda.current_stream(device).stream_id if device.type == "cuda" else None

    def transfer(self, func, name, args, kwargs):
        if name == "copy_":
            destination, source = args[0], args[1]
            out = func(*args, **kwargs)
        else:
            source = args[0]
            out = destination = func(*args, **kwargs)
        self.record_transfer(self.placement(source), self.placement(destination), source, destination)
        return out

    def record_transfer(self, source, destination, tensor, out, name="to"):
        """A copy between devices; `name` "non_blocking": one the host did not wait for (see flow.Order)."""
        if source != destination:
            nbytes = tensor.numel() * tensor.element_size()
            self.trace.add("transfer", name, device=str(destination), source=str(source), nbytes=nbytes,
                           stream=self.stream(destination), source_stream=self.stream(source),
                           **self.trace.flow([tensor], [out]))

    def compute(self, func, name, args, kwargs):
        out = func(*args, **kwargs)
        if name not in NON_COMPUTING:
            inputs = tensors_in(args, kwargs)
            involved = inputs or tensors_in(out)
            if involved:
                device = self.placement(involved[0])
                self.trace.add("op", name, device=str(device), stream=self.stream(device),
                               flops=flops(name, inputs, tensors_in(out)), **self.trace.flow(inputs, tensors_in(out)))
        return out


@contextlib.contextmanager
def active(mode, install_cuda, namespaces=()):
    """Run with `mode` on in every thread, `torch.cuda` patched by `install_cuda` and the trace's
    clocks recorded; all undone on exit, so nothing leaks from one test or submission to the next.

    `namespaces` are module dicts that ran before the patches: their own references to what was
    patched (`from time import perf_counter`, `from torch.cuda import Event`) are rebound too.
    """
    patcher = Patcher()
    default_device = getattr(torch._GLOBAL_DEVICE_CONTEXT, "device_context", None)
    try:
        install_cuda(patcher)
        mode.trace.record_clocks(patcher, mode.clock)
        _in_every_thread(mode, patcher)
        for namespace in namespaces:
            patcher.rebind(namespace)
        with mode.front:
            yield mode
    finally:
        patcher.restore()
        if getattr(torch._GLOBAL_DEVICE_CONTEXT, "device_context", None) is not default_device:
            torch.set_default_device(None if default_device is None else default_device.device)


def _in_every_thread(mode, patcher):
    """Threads started while the runtime is on run under it too: torch keeps modes per thread."""
    bootstrap = threading.Thread._bootstrap_inner  # what every Thread, subclass or not, runs first

    def under_mode(thread):
        with mode.front:
            bootstrap(thread)

    patcher.setattr(threading.Thread, "_bootstrap_inner", under_mode)


def real_gpus(trace, namespaces=()):
    """Record a submission's work on real CUDA GPUs: ops, transfers, synchronizes, events, clocks."""
    return active(DeviceMode(trace), lambda patcher: _record_cuda_waits(trace, patcher), namespaces)


def _read(tensor):
    """{value: a one-element tensor's value, values: a small one's elements} (read with the mode
    off: we are inside its handler), None where not a small real tensor."""
    try:
        if tensor.is_complex() or not 0 < tensor.numel() <= VALUES_CAP:
            return {"value": None, "values": None}
        values = [float(v) for v in tensor.detach().reshape(-1).tolist()]
    except (RuntimeError, TypeError, ValueError):
        return {"value": None, "values": None}
    return {"value": values[0] if len(values) == 1 else None, "values": values if len(values) > 1 else None}


def _record_cuda_waits(trace, patcher):
    """Real CUDA's waits, stream edges and events, recorded as virtual GPUs record them (what a
    wait waits for: grader.trace.Event.waits_for)."""
    cuda = torch.cuda
    real_synchronize, real_event, stream = cuda.synchronize, cuda.Event, cuda.Stream
    real_stream_synchronize, real_wait_stream = stream.synchronize, stream.wait_stream
    numbers = iter(range(1, 1 << 62))  # events are numbered as recorded, as on virtual GPUs

    def synchronize(device=None):
        trace.add("sync", "synchronize", device=_gpu(device))
        return real_synchronize(device)

    def stream_synchronize(self):
        trace.add("sync", "stream.synchronize", device=str(self.device), stream=self.stream_id)
        return real_stream_synchronize(self)

    def wait_stream(self, other):
        trace.add("cuda_event", "wait_stream", device=str(self.device), stream=self.stream_id,
                  source=str(other.device), source_stream=other.stream_id)
        return real_wait_stream(self, other)

    recorded = weakref.WeakKeyDictionary()  # Event -> its number: kept here, never on the event

    class Event(real_event):
        def record(self, stream=None):
            stream = stream if stream is not None else cuda.current_stream()
            super().record(stream)
            recorded[self] = next(numbers)
            trace.add("cuda_event", "record", device=str(self.device), stream=stream.stream_id, ids=[recorded[self]])

        def wait(self, stream=None):
            stream = stream if stream is not None else cuda.current_stream()
            super().wait(stream)
            if self in recorded:
                trace.add("cuda_event", "wait", device=str(stream.device), stream=stream.stream_id,
                          ids=[recorded[self]])

        def synchronize(self):
            trace.add("sync", "event.synchronize", device=str(self.device), ids=[recorded.get(self)])
            return super().synchronize()

        def elapsed_time(self, end_event):
            ms = super().elapsed_time(end_event)
            trace.add("cuda_event", "elapsed_time", device=str(self.device), value=ms,
                      ids=[recorded.get(self), recorded.get(end_event)])
            return ms

    for name in ("memory_allocated", "max_memory_allocated"):
        for module in (cuda, cuda.memory):
            patcher.setattr(module, name, _answered(trace, name, getattr(cuda.memory, name)))
    patcher.setattr(cuda, "synchronize", synchronize)
    patcher.setattr(torch.accelerator, "synchronize", synchronize)
    patcher.setattr(stream, "synchronize", stream_synchronize)
    patcher.setattr(stream, "wait_stream", wait_stream)
    for module in (cuda, cuda.streams):  # Stream.record_event() makes torch.cuda.streams.Event
        patcher.setattr(module, "Event", Event)


def _answered(trace, name, real):
    """torch.cuda's `name` (a GPU's allocated bytes), each answer recorded (Part 5 reports them)."""
    def answer(device=None):
        value = real(device)
        trace.add("memory", name, device=_gpu(device), value=value)
        return value

    return answer


def _gpu(device):
    """The real GPU a device argument names (the current one asked for only when it is meant)."""
    index = cuda_index(device, None)
    return f"cuda:{torch.cuda.current_device() if index is None else index}"
