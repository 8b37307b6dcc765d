"""Virtual CUDA GPUs: every tensor's data stays on the CPU, and each storage remembers which
virtual GPU it lives on, so placement, transfers and device errors behave as on real GPUs."""
import contextlib
import functools
import re
import threading
import weakref

import torch
from torch.utils._device import DeviceContext, _device_constructors

from grader.contract import HOST_READS
from grader.costs import flops
from grader.devices import DEVICE, NON_COMPUTING, OWN_DEVICE, TRANSFERS, DeviceMode, cuda_index, tensors_in
from grader.virtual import autograd, device_rules, refusals, torch_api
from grader.virtual.clocks import GPUClocks
from grader.virtual.memory import CAPACITY, Memory
from grader.virtual.placing import aside, placing
from grader.virtual.rng import RANDOM, VirtualRandom

CPU = torch.device("cpu")
# Calls real CUDA allows across devices, or that compute nothing on one (`_parse_to` reads
# Module.to's arguments: its device argument is not where a tensor is made).
UNCHECKED = frozenset({"set_", "_has_compatible_shallow_copy_type", "is_set_to", "_parse_to"})
# Calls that read no tensor's data on the host: an asynchronous copy's result may be asked its shape before it arrives.
READS_NOTHING = (NON_COMPUTING - HOST_READS) | TRANSFERS | {"__get__", "__set__", "__delete__", "is_pinned",
                                                           "get_device"}


class VirtualGPUs(DeviceMode):
    """The runtime under whose mode (`front`) `cuda:0 .. cuda:count-1` exist and hold CPU-backed tensors."""

    def __init__(self, count, trace, capacity=CAPACITY):
        super().__init__(trace)
        self.count = count
        self.devices = [torch.device("cuda", index) for index in range(count)]
        self._thread = threading.local()  # the current GPU is per thread, as CUDA's is
        self.homes = weakref.WeakKeyDictionary()  # UntypedStorage -> GPU index
        self.memory = Memory(count, capacity)
        self.pinned = weakref.WeakSet()  # host storages pin_memory() or a non_blocking copy to the host made
        self.arriving = {}  # weakref to a host storage -> (GPU, stream, time) of an asynchronous copy into it
        self.events_recorded = 0  # CUDA events are numbered as recorded, on any GPU
        self.seen = [0.0] * count  # per GPU: the host-time second up to which the host has seen its work done
        self.cuda = None  # the VirtualCuda answering torch.cuda: it knows each thread's current streams
        self.clocks = GPUClocks(count)  # when each GPU would finish its work: the time its events read
        self.random = VirtualRandom(self)  # each GPU's random number generator
        self.placing = placing(self)  # the class of the modes that place what an op makes (placing.py)

    @property
    def current(self):
        return getattr(self._thread, "current", 0)

    @current.setter
    def current(self, index):
        self._thread.current = index

    @contextlib.contextmanager
    def on(self):
        """This mode on for the runtime's own torch calls from a place where it may be off (an
        autograd Function's forward runs inside the mode's handler, where the mode is off); the
        calling op's Placing steps aside, as each op inside is placed by its own rule."""
        if self.front in torch.overrides._get_current_function_mode_stack():
            yield
        else:
            with aside(), self.front:
                yield

    # -- where tensors live -------------------------------------------------------------------
    def placement(self, tensor):
        storage = _storage_or_none(tensor)
        index = None if storage is None else self.homes.get(storage)
        return OWN_DEVICE(tensor) if index is None else self.devices[index]

    def resolve(self, device):
        """The device a device argument names; `cuda`, `cuda:N` and ints are virtual GPUs."""
        if isinstance(device, int) or DEVICE(device).type == "cuda":
            return self.gpu(device)
        return DEVICE(device)

    def gpu(self, device=None):
        """The virtual GPU a CUDA device argument names (None and "cuda": the current one)."""
        return self.devices[self.index(device)]

    def index(self, device):
        """The index of a GPU a device argument names: a use of CUDA, which initialises torch.cuda
        first (when one is behind these GPUs), as torch does."""
        if self.cuda is not None:
            self.cuda.lazy_init()
        index = cuda_index(device, self.current)
        if not 0 <= index < self.count:
            raise RuntimeError(
                f"CUDA error: invalid device ordinal (cuda:{index} does not exist: "
                f"{self.count} virtual GPUs, cuda:0 to cuda:{self.count - 1})"
            )
        return index

    def settle(self, out, device):
        if device.type == "cuda":
            for tensor in tensors_in(out):
                self.home(_storage(tensor), device.index)

    def settle_created(self, out, inputs, device, homeless=False):
        """Home on `device` (where the op ran) each storage of `out` that no input has: what the op
        made; and allocate anew one it grew (`out=`, `resize_`). A view or an in-place result keeps
        its tensor's home; `homeless`: only storages with none yet (after an op, for what it made
        out of the dispatcher's sight)."""
        if device.type != "cuda":
            return
        known = {storage._cdata for storage in map(_storage_or_none, inputs) if storage is not None}
        for storage in map(_storage_or_none, tensors_in(out)):
            if storage is None:
                continue
            made = storage._cdata not in known and not (homeless and storage in self.homes)
            if made or (storage in self.homes and self.memory.grown(storage)):
                self.home(storage, device.index)

    def home(self, storage, index):
        """Give `storage` its GPU, allocating its bytes there (grader/virtual/memory.py) until it is
        freed; a storage an op grew (`out=`, `resize_`) is allocated anew, as torch does."""
        if self.homes.get(storage) != index or self.memory.grown(storage):
            self.memory.place(storage, index, self.queue(index)[1])
            self.homes[storage] = index

    def clock(self, real, name):
        """Inside the runtime, clocks read the host's time (grader/virtual/clocks.py): the CPU time
        the process spent on its own, not on GPU work, plus its waits for GPUs. So a clock read
        right after queuing work sees little of it unless the host synchronized first, as on real
        GPUs; and timings mean the same on a busy machine."""
        origin, host_origin = real(), self.clocks.host()
        if name.endswith("_ns"):
            return lambda: origin + int((self.clocks.host() - host_origin) * 1e9)
        return lambda: origin + (self.clocks.host() - host_origin)

    def record_event(self):
        self.events_recorded += 1
        return self.events_recorded

    def wait_for(self, index, name, stream=None, event=None, **fields):
        """The host waits for GPU `index`: all its work, the work queued on `stream` (a number), or
        up to `event` (a recorded Event), as grader.trace.Event.waits_for reads it. Only then may
        it read the times of the CUDA events its GPU has reached, as on real GPUs."""
        self.trace.add("sync", name, device=f"cuda:{index}", stream=stream,
                       ids=None if event is None else [event.number], **fields)
        until = (event.time if event is not None else self.clocks.free[index] if stream is None
                 else self.clocks.done((index, stream)))
        self.clocks.wait(until)
        self.seen[index] = max(self.seen[index], self.clocks.host())  # what its GPU reached by now is done

    def wait(self, name, device, **fields):
        """Reading a GPU value: the host waits for the stream it is read on, the current one."""
        self.wait_for(device.index, name, stream=self.stream(device), **fields)

    def stream(self, device):
        return self.queue(device.index)[1] if device.type == "cuda" else None

    def queue(self, index):
        """The queue work for GPU `index` goes to now: (GPU, the current stream's number)."""
        return index, self.cuda.selected(index).stream_id

    def common_device(self, tensors):
        """The device an op runs on, refusing mixed devices with PyTorch's own words."""
        common = None
        for tensor in tensors:
            device = self.placement(tensor)
            if device.type == "cpu" and tensor.dim() == 0:
                continue  # a CPU scalar may join any device's op, as on real GPUs
            if common is None:
                common = device
            elif device != common:
                first, second = (device, common) if common.type == "cpu" else (common, device)  # a GPU first, as CUDA's
                raise RuntimeError(
                    "Expected all tensors to be on the same device, but found at least two "
                    f"devices, {first} and {second}!"
                )
        return common or CPU

    # -- what the mode intercepts -------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if self.arriving and name not in READS_NOTHING:
            self._await_copies(name, tensors_in(args, kwargs))
        special = _SPECIAL.get(name)
        if special is not None:
            return special(self, func, args, kwargs or {})
        return super().__torch_function__(func, types, args, kwargs)

    def attribute(self, func, attr, args):
        if attr == "device":
            return self.placement(args[0])
        if attr == "is_cuda":
            return self.placement(args[0]).type == "cuda"
        if attr == "is_cpu":
            return self.placement(args[0]).type == "cpu"
        out = func(*args)
        if attr == "grad" and out is not None:  # autograd made it: it lives with its parameter
            self.settle(out, self.placement(args[0]))
        return out

    def transfer(self, func, name, args, kwargs):
        if name == "copy_":
            target, source = self.placement(args[0]), self.placement(args[1])
            non_blocking = args[2] if len(args) > 2 else kwargs.get("non_blocking", False)
            host = args[1] if source == CPU else args[0]
            asynchronous = non_blocking and _storage(host) in self.pinned
            out = self._copy(source, target, func, *args, asynchronous=asynchronous, **kwargs)
            self.record_transfer(source, target, args[1], args[0], name=_copy_name(asynchronous))
            autograd.mark_copy(out, source, first=1)
            return out
        tensor = args[0]
        source = self.placement(tensor)
        device, dtype, non_blocking, copy, memory_format = self._parse_move(name, args[1:], kwargs)
        destination = source if device is None else device
        asynchronous = non_blocking and (destination == CPU or _storage(tensor) in self.pinned)
        out = self._copy(
            source, destination, torch._C.TensorBase.to,
            tensor,
            CPU if destination.type == "cuda" else destination,
            dtype or tensor.dtype,
            non_blocking,
            copy or destination != source,
            asynchronous=asynchronous,
            **({} if memory_format is None else {"memory_format": memory_format}),
        )
        if non_blocking and destination == CPU != source:
            self.pinned.add(_storage(out))  # torch copies a GPU tensor into pinned memory for a non_blocking .to()
        self.settle(out, destination)
        self.record_transfer(source, destination, tensor, out, name=_copy_name(asynchronous))
        if out is not tensor:
            autograd.mark_copy(out, source)
        return out

    def _copy(self, source, destination, func, *args, asynchronous=False, **kwargs):
        """A copy, timed on the current streams of the GPUs at either end (as CUDA's copy between
        GPUs waits for both, and both for it). The host waits for one to or from itself, unless it is
        `asynchronous` (non_blocking, from or into pinned memory, as cudaMemcpyAsync is): then the
        host reads the copy's data only once it has waited for its stream (_await_copies)."""
        queues = [self.queue(d.index) for d in dict.fromkeys((source, destination)) if d.type == "cuda"]
        out = self.clocks.run(queues, func, *args, **kwargs)
        if CPU in (source, destination) and not asynchronous:
            for queue in queues:
                self.clocks.wait(self.clocks.done(queue))
        elif destination == CPU != source:
            arrived = weakref.ref(_storage(out), lambda ref: self.arriving.pop(ref, None))
            self.arriving[arrived] = (*queues[0], self.clocks.done(queues[0]))
        return out

    def _await_copies(self, name, tensors):
        """The host reading memory an asynchronous copy is filling waits for the copy's stream first
        (on real GPUs, a read before a wait would read what was there before the copy)."""
        for tensor in tensors:
            try:
                index, stream, done = self.arriving.pop(weakref.ref(_storage(tensor)), (None, None, 0.0))
            except (RuntimeError, NotImplementedError):  # a tensor without storage
                continue
            if index is not None and done > self.seen[index]:
                self.wait_for(index, name, stream=stream)

    def _parse_move(self, name, args, kwargs):
        """(device, dtype, non_blocking, copy, memory_format) of a `to`, `cuda` or `cpu` call."""
        args, kwargs = list(args), dict(kwargs)
        memory_format = kwargs.pop("memory_format", None)
        if name == "cpu":
            return CPU, None, False, False, memory_format
        if name == "cuda":
            device = args[0] if args else kwargs.get("device")
            non_blocking = args[1] if len(args) > 1 else kwargs.get("non_blocking", False)
            return self.resolve("cuda" if device is None else device), None, non_blocking, False, memory_format
        flags = []
        while args and isinstance(args[-1], bool):
            flags.insert(0, args.pop())
        non_blocking = flags[0] if flags else kwargs.pop("non_blocking", False)
        copy = flags[1] if len(flags) > 1 else kwargs.pop("copy", False)
        if args and isinstance(args[0], torch.Tensor):
            return self.placement(args[0]), args[0].dtype, non_blocking, copy, memory_format
        device = args.pop(0) if args and not isinstance(args[0], torch.dtype) else kwargs.pop("device", None)
        dtype = args[0] if args else kwargs.pop("dtype", None)
        return (None if device is None else self.resolve(device)), dtype, non_blocking, copy, memory_format

    def compute(self, func, name, args, kwargs, tensors=None):
        """Run an op where its tensors are (`tensors`, when only some of its arguments say where)."""
        if name.startswith(("_foreach_", "_fused_", "_amp_foreach_")):
            return self._foreach(func, name, args, kwargs)
        if name == "backward":  # autograd runs the backward ops out of sight: recorded as one
            roots = tensors_in(args[:1], kwargs.get("tensors"))  # loss.backward(), or autograd.backward(tensors=)
            device = self.placement(roots[0]) if roots else CPU
            self.trace.add("op", name, device=str(device) if roots else None, stream=self.stream(device))
            return self.clocks.run([self.queue(g) for g in range(self.count)], func, *args, **kwargs)
        if name in UNCHECKED:
            return func(*args, **kwargs)
        tensors = tensors_in(args, kwargs) if tensors is None else tensors
        destination, kwargs = self._destination(func, name, args, kwargs, tensors)
        if name in device_rules.FROM_DATA:
            device_rules.read_values(self, name, args, kwargs)
        computing = name not in NON_COMPUTING
        op = _placed(self, func, destination) if computing and destination.type == "cuda" else func
        op, kwargs = self._runner(op, name, kwargs, destination)
        try:
            if computing and destination.type == "cuda":
                torch_api.check_cublas(name)
                out = self.clocks.run((self.queue(destination.index),), op, *args, **kwargs)
            else:
                out = op(*args, **kwargs)
        except RuntimeError as error:
            asked = re.search(r"can't allocate memory: you tried to allocate (\d+) bytes", str(error))
            if destination.type != "cuda" or asked is None:
                raise
            self.memory.check_room(destination.index, int(asked[1]))  # more than the GPU has: CUDA's own error
            raise refusals.host_memory(int(asked[1]), destination) from None
        if name in device_rules.SHARING:
            out = self._copied_unless_there(out, tensors, destination)
        self.settle_created(out, tensors, destination, homeless=True)
        if computing and (tensors or tensors_in(out)):
            self.trace.add("op", name, device=str(destination), stream=self.stream(destination),
                           flops=flops(name, tensors, tensors_in(out)), **self.trace.flow(tensors, tensors_in(out)))
        return out

    def _destination(self, func, name, args, kwargs, tensors):
        """(where the op runs, by its kind's rule or its `device=`; kwargs with a GPU's data going to the CPU)."""
        destination = device_rules.device_of(self, name, args, kwargs, tensors)
        device = kwargs.get("device")
        if device is None and func in _device_constructors():
            device = _default_device()
        if device is None:
            return destination, kwargs
        destination = self.resolve(device)  # factories, *_like, new_*, from data
        return destination, {**kwargs, "device": CPU if destination.type == "cuda" else destination}

    def _copied_unless_there(self, out, tensors, destination):
        """as_tensor/asarray give back the data's own memory only where it already is: a tensor on
        `destination`. On a GPU, a CPU tensor's, another GPU's or numpy's memory is copied."""
        if destination.type != "cuda":
            return out
        own = any(_storage(t)._cdata == _storage(out)._cdata for t in tensors)
        if own and self.placement(out) == destination or not own and _storage(out).resizable():
            return out
        with torch._C.DisableTorchFunction():
            return out.clone()

    def _runner(self, func, name, kwargs, destination):
        """(what runs an op, its keywords): a random op on a GPU draws from that GPU's generator; a
        factory's pin_memory=True is remembered by the runtime (there is no driver to page-lock it)."""
        if destination.type == "cuda" and name in RANDOM:
            func = functools.partial(self.random.draw, destination.index, func)
        if not kwargs.get("pin_memory"):
            return func, kwargs
        if destination.type == "cuda":
            raise RuntimeError("Only dense CPU tensors can be pinned")

        def pinned(*args, **kwargs):
            out = func(*args, **kwargs)
            self.pinned.add(_storage(out))
            return out

        return pinned, {**kwargs, "pin_memory": False}

    def _foreach(self, func, name, args, kwargs):
        """Foreach and fused ops (the optimizers' and GradScaler's fast paths) may mix devices across list positions:
        torch groups tensors by their real device, which here is the CPU for every GPU."""
        lists = [a for a in args if isinstance(a, (list, tuple)) and a and isinstance(a[0], torch.Tensor)]
        if not lists:
            return func(*args, **kwargs)
        scalars = tensors_in([a for a in args if not any(a is each for each in lists)], kwargs)
        devices = [self.common_device([each[i] for each in lists] + scalars) for i in range(len(lists[0]))]
        out = self.clocks.run([self.queue(d.index) for d in dict.fromkeys(devices) if d.type == "cuda"],
                              func, *args, **kwargs)
        for device in dict.fromkeys(devices):
            on_device = [t for each in lists for t, d in zip(each, devices) if d == device]
            self.trace.add("op", name, device=str(device), stream=self.stream(device), flops=flops(name, on_device, []),
                           **self.trace.flow(on_device))
        if isinstance(out, (list, tuple)):
            for tensor, device in zip(out, devices):
                self.settle(tensor, device)
        return out

    # -- methods that answer differently for a GPU tensor ------------------------------------
    def _autograd_grad(self, func, args, kwargs):
        """Gradients come back on the devices of the inputs they belong to."""
        grads = func(*args, **kwargs)
        inputs = kwargs["inputs"] if "inputs" in kwargs else args[1]
        inputs = [inputs] if isinstance(inputs, torch.Tensor) else inputs
        for grad, tensor in zip(grads, inputs):
            if grad is not None:
                self.settle(grad, self.placement(tensor))
        return grads

    def _get_device(self, func, args, kwargs):
        device = self.placement(args[0])
        return device.index if device.type == "cuda" else -1

    def _repr(self, func, args, kwargs):
        """Tensor.__repr__ (a Parameter's own __repr__ adds its heading, then calls this)."""
        tensor = args[0]
        self.host_read("__repr__", tensor)  # (printing a tensor reads it)
        with self.trace.paused(), self.front:  # re-entered, so the printed device is the virtual one
            return torch._tensor_str._str(tensor, **kwargs)

    def _format(self, func, args, kwargs):
        """f"{x}" and format(x): a non-scalar tensor prints as `str(x)` does, with its GPU."""
        tensor, spec = args[0], args[1] if len(args) > 1 else ""
        if tensor.dim() == 0 or spec:
            return super().__torch_function__(func, (), args, kwargs)
        text = self._repr(func, (tensor,), {})
        return f"Parameter containing:\n{text}" if isinstance(tensor, torch.nn.Parameter) else text

    def _setitem(self, func, args, kwargs):
        """`out[i:j] = t` copies t into out from any device, as real CUDA does; index tensors must
        be on the CPU or out's GPU, and so must t when the indices are tensors."""
        target, index, value = args
        destination = self.placement(target)
        device_rules.check_indices(self, target, index)
        indices = tensors_in(index)
        source = self.placement(value) if isinstance(value, torch.Tensor) else destination
        if source == destination or (source == CPU and value.dim() == 0):
            return self.compute(func, "__setitem__", args, kwargs, tensors=tensors_in([target, value]))
        if indices:
            raise RuntimeError(f"expected device {destination} but got device {source} for value tensor")
        self._copy(source, destination, func, *args, **kwargs)
        self.record_transfer(source, destination, value, target)
        autograd.mark_copy(target, source, first=1)

    def _numpy(self, func, args, kwargs):
        """`x.numpy()` and `np.asarray(x)` (Tensor.__array__) of a GPU tensor refuse, as on CUDA;
        `x.numpy(force=True)` copies it to the host first."""
        device = self.placement(args[0])
        if device.type == "cuda" and kwargs.get("force"):
            return func(self.transfer(torch.Tensor.cpu, "cpu", args[:1], {}), *args[1:], **kwargs)
        if device.type == "cuda":
            raise TypeError(
                f"can't convert {device} device type tensor to numpy. "
                "Use Tensor.cpu() to copy the tensor to host memory first."
            )
        return func(*args, **kwargs)

    def _pin_memory(self, func, args, kwargs):
        """A copy the runtime remembers as pinned (there is no driver to page-lock it)."""
        if self.placement(args[0]).type == "cuda":
            raise RuntimeError(f"cannot pin '{self._type_name(args[0])}' only dense CPU tensors can be pinned")
        out = args[0].clone()
        self.pinned.add(_storage(out))
        return out

    def _is_pinned(self, func, args, kwargs):
        return _storage(args[0]) in self.pinned

    def _type(self, func, args, kwargs):
        """`x.type()` names a GPU tensor's type as CUDA does; `x.type(torch.cuda.FloatTensor)` (or
        its name) converts to that type's dtype on a GPU: x's own, or the current one for a host
        tensor, as torch does; a CPU type brings a GPU tensor to the host; a dtype keeps x's device."""
        target = args[1] if len(args) > 1 else kwargs.get("dtype")
        if target is None:
            return self._type_name(args[0])
        legacy = torch_api.legacy_type(target)
        if legacy is None:
            return self.compute(func, "type", args, kwargs)
        (cuda, dtype), here = legacy, self.placement(args[0])
        device = here if (here.type == "cuda") == cuda else self.gpu() if cuda else CPU
        non_blocking = args[2] if len(args) > 2 else kwargs.get("non_blocking", False)
        return self.transfer(torch.Tensor.to, "to", (args[0], device, dtype, non_blocking), {})

    def _type_name(self, tensor):
        name = torch._C.TensorBase.type(tensor)
        return name.replace("torch.", "torch.cuda.", 1) if self.placement(tensor).type == "cuda" else name


def _copy_name(asynchronous):
    """A transfer's name in the trace: "non_blocking" where the host did not wait for it."""
    return "non_blocking" if asynchronous else "to"


def _default_device():
    """The device torch.set_default_device or `with torch.device(...)` chose, if any: torch keeps
    it in a mode at the bottom of the stack, below this runtime, which must apply it itself."""
    for mode in torch.overrides._get_current_function_mode_stack():
        if isinstance(mode, DeviceContext):
            return mode.device
    return None


def _placed(gpus, func, device):
    """func run with what it makes placed on `device` as it makes it."""
    def run(*args, **kwargs):
        with gpus.placing(device):
            return func(*args, **kwargs)

    return run


def _storage_or_none(tensor):
    try:
        return _storage(tensor)
    except (RuntimeError, NotImplementedError):  # a tensor without storage
        return None


def _storage(tensor):
    """The storage that says where a tensor lives: a sparse tensor's is its values'."""
    return (tensor._values() if tensor.layout == torch.sparse_coo else tensor).untyped_storage()


_SPECIAL = {
    "__format__": VirtualGPUs._format,
    "grad": VirtualGPUs._autograd_grad,
    "get_device": VirtualGPUs._get_device,
    "__repr__": VirtualGPUs._repr,
    "__setitem__": VirtualGPUs._setitem,
    "device": torch_api.device,
    "numpy": VirtualGPUs._numpy,
    "__array__": VirtualGPUs._numpy,
    "pin_memory": VirtualGPUs._pin_memory,
    "is_pinned": VirtualGPUs._is_pinned,
    "type": VirtualGPUs._type,
}
