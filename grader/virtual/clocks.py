"""The host's clock and each virtual GPU's own clock.

The CPU does every GPU's work itself, one op after another. On real GPUs the host only queues
the work and each GPU works through its own queue: a clock read right after queuing a forward
pass sees almost none of it, and an event on cuda:0 does not wait for cuda:1's work. The clocks
replay that from what the CPU measured:

* host time is the process's CPU time not spent on GPU work, plus the time it waited for a GPU;
  the `time` clocks read it;
* a GPU op starts once the host has queued it and its GPU has finished the work before it, and
  lasts the CPU time it took; a copy between GPUs occupies both;
* an event's time is when its GPU's queue reaches it; a host wait (synchronize, `.item()`)
  lasts until the GPU's queue is empty, or until the event waited for.
"""
from time import process_time as cpu_clock  # bound before any clock is patched


class GPUClocks:
    def __init__(self, count):
        self.gpu_work = 0.0  # CPU seconds spent doing GPU work, which real GPUs would have done
        self.waited = 0.0  # seconds the host has waited for GPUs
        self.free = [0.0] * count  # host-time second at which each GPU's queued work is done
        self._held = None  # the host's time while the CPU does GPU work (code called back from it reads this)

    def host(self):
        return self._held if self._held is not None else cpu_clock() - self.gpu_work + self.waited

    def run(self, gpus, func, *args, **kwargs):
        """func(*args, **kwargs), timed as work queued on each of `gpus` (indices). Work it runs in
        turn (an op in a backward hook) is timed on its own GPU, and is part of this work."""
        if self._held is not None:
            return self._queue(gpus, self._held, func, *args, **kwargs)
        before = cpu_clock()
        self._held = before - self.gpu_work + self.waited
        try:
            return self._queue(gpus, self._held, func, *args, **kwargs)
        finally:
            self.gpu_work += cpu_clock() - before
            self._held = None

    def _queue(self, gpus, host, func, *args, **kwargs):
        start = max([host, *(self.free[g] for g in gpus)])
        before = cpu_clock()
        try:
            return func(*args, **kwargs)
        finally:
            for g in gpus:
                self.free[g] = max(self.free[g], start + cpu_clock() - before)

    def record(self, gpu):
        """The time of an event queued on `gpu` now."""
        self.free[gpu] = max(self.host(), self.free[gpu])
        return self.free[gpu]

    def wait(self, until):
        """The host waits until the host-time second `until`."""
        self.waited += max(0.0, until - self.host())

    def wait_for_gpu(self, gpu):
        self.wait(self.free[gpu])

    def queue_after(self, gpu, until):
        """Work queued on `gpu` from now on starts no earlier than `until` (a stream's wait)."""
        self.free[gpu] = max(self.free[gpu], until)
