"""The virtual GPUs behind `torch.cuda`: torch's own Python `torch.cuda` runs (its checks, its error
types, its lazy initialisation), and only the C entry points it calls for the driver (device count,
current device, properties, synchronize, initialisation) answer for the virtual GPUs. Streams,
events and the memory statistics are stand-ins: a CUDA build's `_CudaStreamBase` and
`_CudaEventBase` are C classes whose constructors reach the driver.

Virtual GPUs compute synchronously on the CPU, so `synchronize` has nothing to wait for: it is
recorded in the trace (with the GPU it would have waited for), which is what the grader checks, and
brings the host's clock up to that GPU's (grader/virtual/clocks.py), which events and queries read.
"""
import collections
import itertools
import os
import sys
import threading
import weakref

import torch

from grader.devices import cuda_index
from grader.virtual import refusals

# The torch.cuda names replaced while virtual GPUs are active.
NAMES = "Event Stream stream current_stream default_stream set_stream".split()
# The memory statistics, replaced in torch.cuda and in torch.cuda.memory, where they are defined;
# torch's own memory_summary, memory_cached and reset_max_* read them there.
MEMORY = (
    "memory_stats memory_stats_as_nested_dict memory_allocated max_memory_allocated memory_reserved "
    "max_memory_reserved reset_peak_memory_stats reset_accumulated_memory_stats mem_get_info empty_cache "
    "set_per_process_memory_fraction get_per_process_memory_fraction"
).split()
# The torch.accelerator names replaced, by the torch.cuda function (or VirtualCuda method) that
# answers for each. Every optimizer asks `current_accelerator(check_available=True)` and then
# `current_stream()`, which on a CUDA build of torch would otherwise reach the real driver.
ACCELERATOR = {
    "is_available": "is_available", "device_count": "device_count",
    "current_device_index": "current_device", "current_device_idx": "current_device",
    "set_device_index": "set_device", "set_device_idx": "set_device", "device_index": "device",
    "current_stream": "current_stream", "set_stream": "set_stream", "synchronize": "synchronize",
}
# torch.accelerator's memory calls (their C entry points reach for a real accelerator), by the torch.cuda one answering.
ACCELERATOR_MEMORY = {name: name for name in (
    "memory_stats memory_allocated max_memory_allocated reset_peak_memory_stats reset_accumulated_memory_stats "
    "empty_cache memory_reserved max_memory_reserved").split()} | {"get_memory_info": "mem_get_info"}
VISIBLE = "CUDA_VISIBLE_DEVICES"
DEVICE_TYPE_CUDA = 1  # c10::DeviceType::CUDA
STREAM_HANDLES = 0x7F0000000000  # where the handles of streams other than the default ones start
# The driver's entry points torch.cuda's Python calls, by the VirtualCuda method answering each.
DRIVER = {
    "_cuda_getDeviceCount": "visible", "_cuda_init": "driver_init", "_cuda_getDevice": "get_device",
    "_cuda_setDevice": "set_device", "_cuda_synchronize": "synchronize", "_cuda_ipc_collect": "ipc_collect",
    "_cuda_canDeviceAccessPeer": "can_device_access_peer", "_cuda_isCurrentStreamCapturing": "capturing",
    "_cuda_getCurrentRawStream": "raw_stream",
}


class VirtualCuda:
    def __init__(self, gpus):
        self.gpus = gpus
        self.physical = gpus.count  # the GPUs the machine has; CUDA_VISIBLE_DEVICES shows some of them
        self.launch = os.environ.get(VISIBLE)  # the real GPUs' selection the runtime started under
        self.count = None  # the visible GPUs, counted when the driver first initialises
        self.Event = _event_class(gpus)
        self.Stream, default = _stream_class(self)
        self.stream = _stream_context(self)
        self.numbers = itertools.count(1)  # each stream made is numbered, on any GPU; 0 is each GPU's default
        self.defaults = [default(index) for index in range(gpus.count)]
        self._selected = threading.local()  # per thread: GPU index -> the stream selected there
        gpus.cuda = self

    def install(self, patcher):
        modules = [module for name, module in list(sys.modules.items()) if name.startswith("torch.cuda")]
        for name, answer in DRIVER.items():
            patcher.setattr(torch._C, name, getattr(self, answer))
            for module in modules:  # `from torch._C import _cuda_...` at import (torch.cuda.graphs)
                if name in vars(module):
                    patcher.setattr(module, name, getattr(self, answer))
        self._start_uninitialised(patcher)
        for name in NAMES:
            patcher.setattr(torch.cuda, name, getattr(self, name))
        for name in MEMORY:
            for module in (torch.cuda, torch.cuda.memory):
                patcher.setattr(module, name, getattr(self, name))
        patcher.setattr(torch, "Stream", self.Stream)  # the device-generic stream: a GPU's, here
        # torch's own takes real streams only; a plain function, so that it binds to each tensor
        patcher.setattr(torch.Tensor, "record_stream", lambda tensor, stream: self.record_stream(tensor, stream))
        patcher.setattr(torch.accelerator, "current_accelerator", self.current_accelerator)
        for name, answer in {**ACCELERATOR, **ACCELERATOR_MEMORY}.items():
            if hasattr(torch.accelerator, name):
                patcher.setattr(torch.accelerator, name, getattr(torch.cuda, answer))

    def _start_uninitialised(self, patcher):
        """torch.cuda as a process that has not used CUDA yet sees it: not initialised, nothing
        queued for initialisation (a CPU-only torch queues seeds it could never apply), the
        driver's own helpers answering for the virtual GPUs."""
        cuda = torch.cuda
        parse = cuda._parse_visible_devices
        state = {"_initialized": False, "_cached_device_count": None, "_queued_calls": [],
                 "_lazy_seed_tracker": torch._utils._LazySeedTracker(), "_cudart": refusals.Cudart(),
                 "_exchange_device": self.exchange_device, "_maybe_exchange_device": self.exchange_device,
                 "_get_device_properties": self.properties, "_raw_device_count_nvml": lambda: self.physical,
                 "_parse_visible_devices": lambda: self.visible_devices(parse)}
        for name, value in state.items():
            patcher.setattr(cuda, name, value)

    def visible_devices(self, parse):
        """torch's own reading of CUDA_VISIBLE_DEVICES, of the value the program set: the value the
        runtime started under chose among the machine's real GPUs (a cluster's, or "" to hide
        them), not among these."""
        return list(range(64)) if os.environ.get(VISIBLE) == self.launch else parse()

    def visible(self):
        """How many GPUs the driver sees: counted once, when it first initialises, as CUDA does, by
        torch's own reading of CUDA_VISIBLE_DEVICES against these GPUs."""
        if self.count is None:
            self.count = max(torch.cuda._device_count_nvml(), 0)  # negative: UUIDs, which name none of them
            self.gpus.count = self.count
        return self.count

    def driver_init(self):
        if self.visible() == 0:
            raise RuntimeError("No CUDA GPUs are available")
        self.gpus.random.initialise(self.count)

    def lazy_init(self):
        """What a CUDA call does first, as torch's C++ does: initialise CUDA once."""
        if not torch.cuda._initialized:
            torch.cuda._lazy_init()

    def current_accelerator(self, check_available=False):
        return torch.device("cuda")

    def ipc_collect(self):
        pass  # no memory is shared between processes

    def capturing(self):
        return False  # no CUDA graph is ever being captured

    def raw_stream(self, index):
        """The cudaStream_t of GPU `index`'s current stream (what compiled kernels would launch on)."""
        return self.selected(index).cuda_stream

    def get_device(self):
        self.lazy_init()
        return self.gpus.current

    def set_device(self, device):
        self.lazy_init()
        self.gpus.current = self.gpus.index(device)

    def exchange_device(self, index):
        """Make GPU `index` current and say which was (torch.cuda.device's entry point)."""
        if index < 0:
            return -1
        previous = self.get_device()
        self.set_device(index)
        return previous

    def can_device_access_peer(self, device, peer_device):
        """Virtual GPUs share the host's memory: each reaches every other one."""
        return device != peer_device

    def synchronize(self):
        """Waits, on real GPUs, for the current GPU only."""
        self.gpus.wait_for(self.gpus.current, "synchronize")

    def current_stream(self, device=None):
        return self.selected(self._stream_gpu(device))

    def selected(self, index):
        """The stream selected on GPU `index` in this thread (the runtime's own question)."""
        return getattr(self._selected, "streams", {}).get(index, self.defaults[index])

    def default_stream(self, device=None):
        return self.defaults[self._stream_gpu(device)]

    def _stream_gpu(self, device):
        """The GPU a stream query names, checked as c10's stream pool checks it."""
        self.lazy_init()
        index = cuda_index(device, self.gpus.current)
        if not 0 <= index < self.visible():
            raise RuntimeError(f"Device index value {index} is out of index range [0, {self.visible()})")
        return index

    def set_stream(self, stream):
        """Select `stream` on its GPU and make that GPU current, as on real CUDA."""
        if not hasattr(self._selected, "streams"):
            self._selected.streams = {}
        self._selected.streams[stream.device.index] = stream
        self.gpus.current = stream.device.index

    def record_stream(self, tensor, stream):
        """Keep `tensor`'s memory until `stream`'s work is done: already so, on virtual GPUs."""
        if self.gpus.placement(tensor).type != "cuda":
            raise RuntimeError("record_stream: expected a CUDA tensor")

    def properties(self, index):
        """What torch's get_device_properties returns once it has checked `index`."""
        return _Properties(f"Virtual GPU {index} (CPU-backed, grader.virtual)", index, self.gpus.memory.capacity)

    # -- memory: the caching allocator's books (memory.py), read as torch reads them -----------
    def memory_stats_as_nested_dict(self, device=None):
        """torch's _cuda_memoryStats: {} before CUDA is initialised, as torch's own answers."""
        return self.gpus.memory.gpus[self.gpus.index(device)].as_dict() if torch.cuda.is_initialized() else {}

    def memory_stats(self, device=None):
        """The nested statistics flattened to "allocated_bytes.all.current" and so on, sorted, as torch does."""
        return collections.OrderedDict(sorted(_flattened(self.memory_stats_as_nested_dict(device))))

    def memory_allocated(self, device=None):
        """Bytes of the blocks the live tensors of that GPU hold (each rounded up to 512 bytes)."""
        return self._answer("memory_allocated", "allocated_bytes.all.current", device)

    def max_memory_allocated(self, device=None):
        return self._answer("max_memory_allocated", "allocated_bytes.all.peak", device)

    def memory_reserved(self, device=None):
        """Bytes of the segments that GPU's allocator holds, cached blocks included."""
        return self.memory_stats(device).get("reserved_bytes.all.current", 0)

    def max_memory_reserved(self, device=None):
        return self.memory_stats(device).get("reserved_bytes.all.peak", 0)

    def _answer(self, name, key, device):
        """A GPU's allocated bytes, recorded in the trace as answered (Part 5 reports them); 0 before
        CUDA is used, as torch answers, without starting it."""
        if not torch.cuda.is_initialized():
            return 0
        index = self.gpus.index(device)
        value = self.memory_stats(index).get(key, 0)
        self.gpus.trace.add("memory", name, device=f"cuda:{index}", value=value)
        return value

    def reset_peak_memory_stats(self, device=None):
        self.gpus.memory.gpus[self.gpus.index(device)].reset_peak()

    def reset_accumulated_memory_stats(self, device=None):
        self.gpus.memory.gpus[self.gpus.index(device)].reset_accumulated()

    def empty_cache(self):
        """Release every GPU's cached segments that hold no tensor, as torch's emptyCache does."""
        for gpu in self.gpus.memory.gpus:
            gpu.empty_cache()

    def mem_get_info(self, device=None):
        """(free, total) bytes of that virtual GPU: what its allocator has not reserved."""
        gpu = self.gpus.memory.gpus[self.gpus.index(device)]
        return gpu.capacity - gpu.current("reserved_bytes"), gpu.capacity

    def set_per_process_memory_fraction(self, fraction, device=None):
        """Segments past fraction x capacity on that GPU fail with CUDA's out-of-memory error."""
        if not isinstance(fraction, float):
            raise TypeError("Invalid type for fraction argument, must be `float`")
        if not 0 <= fraction <= 1:
            raise ValueError(f"Invalid fraction value: {fraction}. Allowed range: 0~1")
        self.gpus.memory.gpus[self.gpus.index(device)].fraction = fraction

    def get_per_process_memory_fraction(self, device=None):
        fraction = self.gpus.memory.gpus[self.gpus.index(device)].fraction
        return 1.0 if fraction is None else fraction


def _flattened(stats, prefix=""):
    """(key, value) of each statistic, the keys of nested dicts joined with dots."""
    for key, value in stats.items():
        if isinstance(value, dict):
            yield from _flattened(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


class _StreamCore:
    """A CUDA stream of a virtual GPU as the runtime sees it: a queue of its own on its GPU's clock
    (clocks.py), whose work is ordered after another stream's only by `wait_stream` or
    `wait_event`. The Stream a submission holds only points here (_stream_class)."""

    def __init__(self, cuda, device, priority, number):
        self.cuda, self.device, self.priority, self.number = cuda, device, priority, number
        self.queue = device.index, number  # the clocks' queue
        self.entered = []  # the selections `with stream:` made, innermost last

    def synchronize(self):
        self.cuda.gpus.wait_for(self.device.index, "stream.synchronize", stream=self.number)

    def wait_stream(self, other):
        """Work queued here from now on waits for the work queued on `other` (a Stream) so far."""
        clocks = self.cuda.gpus.clocks
        clocks.queue_after(self.queue, clocks.done(_queue(other)))
        self.cuda.gpus.trace.add("cuda_event", "wait_stream", device=str(self.device), stream=self.number,
                                 source=str(other.device), source_stream=other.stream_id)

    def query(self):
        """Whether the work queued here is done by now, on its GPU's clock."""
        clocks = self.cuda.gpus.clocks
        return clocks.done(self.queue) <= clocks.host()

    def enter(self, stream):
        selected = self.cuda.stream(stream)
        selected.__enter__()
        self.entered.append(selected)


def _stream_context(cuda):
    """The class of what `torch.cuda.stream(s)` returns: `with` it, work goes to s (and its GPU is
    current) for the block. The runtime lives in this closure: a contextmanager's `.args` would
    hand it to the submission."""

    class StreamContext:
        def __init__(self, stream):
            self.stream, self._saved = stream, []

        def __enter__(self):
            if self.stream is not None:
                self._saved.append((cuda.gpus.current, cuda.current_stream(self.stream.device)))
                cuda.set_stream(self.stream)

        def __exit__(self, *exc):
            if self.stream is not None:
                device, previous = self._saved.pop()
                cuda.set_stream(previous)
                cuda.gpus.current = device
            return False

    return StreamContext


def _stream_class(cuda):
    """The Stream class of one runtime. What a stream is (its GPU, number, queue) lives in the
    runtime, keyed by the stream, never on it: a submission holds a stream, not its queue."""
    cores = weakref.WeakKeyDictionary()  # Stream -> _StreamCore

    def core(stream):
        try:
            return cores[stream]
        except KeyError:
            raise RuntimeError("this Stream was never initialised (a subclass must call super().__init__())") from None

    class Stream(_StreamCalls):
        """A CUDA stream of a virtual GPU (grader.virtual.cuda._StreamCore)."""

        def __init__(self, device=None, priority=0, **kwargs):
            cores[self] = _StreamCore(cuda, cuda.gpus.gpu(device), priority, next(cuda.numbers))

        device = property(lambda self: core(self).device, doc="Its GPU (read-only, as on CUDA).")
        device_index = property(lambda self: core(self).device.index)
        device_type = property(lambda self: DEVICE_TYPE_CUDA, doc="c10's DeviceType of CUDA, as torch's C stream says.")
        priority = property(lambda self: core(self).priority)
        stream_id = property(lambda self: core(self).number,
                             doc="Its number, as torch names a real stream's (0: its GPU's default stream).")
        cuda_stream = property(lambda self: _handle(core(self)),
                               doc="Its cudaStream_t, as an int: 0 for a GPU's default (legacy) stream.")

        def synchronize(self):
            core(self).synchronize()

        def wait_stream(self, other):
            core(self).wait_stream(other)

        def query(self):
            return core(self).query()

        def __enter__(self):  # `with stream:` selects it, as torch.cuda.stream(stream) does
            core(self).enter(self)

        def __exit__(self, *exc):
            return core(self).entered.pop().__exit__(*exc)

    def default(index):
        """GPU `index`'s default stream, made before CUDA is initialised (so not through Stream())."""
        stream = Stream.__new__(Stream)
        cores[stream] = _StreamCore(cuda, cuda.gpus.devices[index], 0, 0)
        return stream

    return Stream, default


def _handle(core):
    """A stream's cudaStream_t as an int: distinct per stream, 0 for the default (legacy) stream."""
    return 0 if core.number == 0 else STREAM_HANDLES + 0x100 * core.number


class _StreamCalls:
    """What a virtual Stream answers through the public API alone."""

    def wait_event(self, event):
        event.wait(self)

    def record_event(self, event=None):
        event = event if event is not None else torch.cuda.Event()
        event.record(self)
        return event

    def is_capturing(self):
        return False  # no CUDA graph is ever being captured (optimizers ask)

    def __repr__(self):
        return f"<torch.cuda.Stream device={self.device} (virtual)>"


def _queue(stream):
    """The clocks' queue of a stream: (its GPU, its number)."""
    return stream.device.index, stream.stream_id


class _Properties:
    """What get_device_properties says of a virtual GPU: an A100's figures and the runtime's
    memory capacity, stated, not measured (host memory bounds what is really used)."""

    def __init__(self, name, index, total_memory):
        self.name, self.index = name, index
        self.total_memory = total_memory
        self.major, self.minor = 8, 0
        self.multi_processor_count, self.max_threads_per_multi_processor, self.warp_size = 108, 2048, 32
        self.regs_per_multiprocessor, self.L2_cache_size = 65536, 40 * 2**20
        self.is_integrated = self.is_multi_gpu_board = False

    def __repr__(self):
        return (f"_CudaDeviceProperties(name='{self.name}', major={self.major}, minor={self.minor}, "
                f"total_memory={self.total_memory // 2**20}MB, multi_processor_count={self.multi_processor_count})")


class _EventCore:
    """A CUDA event on a virtual GPU as the runtime sees it: it reads its GPU's clock
    (grader.virtual.clocks) when the work queued there before it is done. As on real GPUs, its
    time can be read only once the host has waited for it. The Event a submission holds only
    points here (_event_class)."""

    def __init__(self, gpus, enable_timing):
        self.gpus, self.enable_timing = gpus, enable_timing
        self.device = self.time = self.number = None  # its GPU, its time there, its number once recorded

    def record(self, stream):
        stream = stream if stream is not None else self.gpus.cuda.current_stream()
        if self.device is not None and stream.device != self.device:
            raise RuntimeError(f"Event device {self.device.index} does not match recording stream's device "
                               f"{stream.device.index}.")
        self.device = stream.device
        self.time = self.gpus.clocks.record(_queue(stream))
        self.number = self.gpus.record_event()
        self.gpus.trace.add("cuda_event", "record", device=str(self.device), stream=stream.stream_id,
                            value=self.time, ids=[self.number])

    def query(self):
        """Whether its GPU has reached it by now, on that GPU's clock (an event never recorded
        counts as reached). Once the host has seen it reached, it may read the event's time."""
        if self.number is None:
            return True
        if self.time > self.gpus.clocks.host():
            return False
        self.gpus.seen[self.device.index] = max(self.gpus.seen[self.device.index], self.time)
        return True

    def completed(self):
        return self.number is not None and self.time <= self.gpus.seen[self.device.index]

    def wait(self, stream):
        """Work queued on `stream` from now on waits for this event (nothing, if never recorded)."""
        stream = stream if stream is not None else self.gpus.cuda.current_stream()
        if self.number is not None:
            self.gpus.clocks.queue_after(_queue(stream), self.time)
            self.gpus.trace.add("cuda_event", "wait", device=str(stream.device), stream=stream.stream_id,
                                ids=[self.number])

    def synchronize(self):
        if self.number is not None:
            self.gpus.wait_for(self.device.index, "event.synchronize", event=self)

    def elapsed_time(self, end):
        _check_interval(self, end)
        ms = (end.time - self.time) * 1000.0
        self.gpus.trace.add("cuda_event", "elapsed_time", device=str(self.device), value=ms,
                            ids=[self.number, end.number])
        return ms


def _event_class(gpus):
    """The Event class of one runtime. What an event is (its GPU, time, number) lives in the
    runtime, keyed by the event, never on it: a submission holds the event, not its time."""
    cores = weakref.WeakKeyDictionary()  # Event -> _EventCore

    def core(event):
        return cores.setdefault(event, _EventCore(gpus, False))

    class Event:
        """A CUDA event of a virtual GPU (grader.virtual.cuda._EventCore)."""

        def __init__(self, enable_timing=False, blocking=False, interprocess=False):
            cores[self] = _EventCore(gpus, enable_timing)

        device = property(lambda self: core(self).device, doc="The GPU it was recorded on (read-only).")

        def record(self, stream=None):
            core(self).record(stream)

        def query(self):
            return core(self).query()

        def wait(self, stream=None):
            core(self).wait(stream)

        def synchronize(self):
            core(self).synchronize()

        def elapsed_time(self, end_event):
            return core(self).elapsed_time(core(end_event))

    Event.__module__ = "torch.cuda"
    return Event


def _check_interval(start, end):
    """Refuse, in CUDA's words, an interval real events could not give."""
    if start.time is None or end.time is None:
        raise RuntimeError("Both events must be recorded before calculating elapsed time.")
    if not (start.enable_timing and end.enable_timing):
        raise RuntimeError("Both events must be created with argument 'enable_timing=True'.")
    if start.device != end.device:
        raise RuntimeError("CUDA error: invalid resource handle (elapsed_time needs two events of the same "
                           f"GPU; these were recorded on {start.device} and {end.device})")
    if not (start.completed() and end.completed()):
        raise RuntimeError("CUDA error: device not ready (the host read an event's time before "
                           "waiting for it: synchronize the event or its GPU first)")
