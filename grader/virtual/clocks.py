"""The host's clock and each virtual GPU's own clock.

The CPU does every GPU's work itself, one op after another. On real GPUs the host only queues
the work and each GPU works through its own queue: a clock read right after queuing a forward
pass sees almost none of it, and an event on cuda:0 does not wait for cuda:1's work. The clocks
replay that from what the CPU measured:

* host time is the process's CPU time not spent on GPU work, plus the time it waited for a GPU;
  the `time` clocks read it;
* each stream of a GPU is a queue of its own (a queue is a (GPU, stream) pair): a GPU op starts
  once the host has queued it and its stream has finished the work before it, and lasts the CPU
  time it took; a copy between GPUs occupies the current streams of both;
* an event's time is when its stream reaches it; a host wait lasts until the GPU's queues are all
  empty (synchronize), one queue is (a stream's synchronize, `.item()`), or the event waited for
  is reached. A stream's wait (`wait_stream`, `wait_event`) delays its later work.
"""
from time import process_time as cpu_clock  # bound before any clock is patched


class GPUClocks:
    def __init__(self, count):
        self.gpu_work = 0.0  # CPU seconds spent doing GPU work, which real GPUs would have done
        self.waited = 0.0  # seconds the host has waited for GPUs
        self.free = [0.0] * count  # host-time second at which all of each GPU's queued work is done
        self.queues = {}  # (GPU, stream) -> host-time second at which the work queued there is done
        self._held = None  # the host's time while the CPU does GPU work (code called back from it reads this)

    def host(self):
        return self._held if self._held is not None else cpu_clock() - self.gpu_work + self.waited

    def done(self, queue):
        """When the work queued so far on `queue`, a (GPU, stream) pair, is done."""
        return self.queues.get(queue, 0.0)

    def run(self, queues, func, *args, **kwargs):
        """func(*args, **kwargs), timed as work queued on each of `queues`. Work it runs in turn (an
        op in a backward hook) is timed on its own queue, and is part of this work."""
        if self._held is not None:
            return self._queue(queues, self._held, func, *args, **kwargs)
        before = cpu_clock()
        self._held = before - self.gpu_work + self.waited
        try:
            return self._queue(queues, self._held, func, *args, **kwargs)
        finally:
            self.gpu_work += cpu_clock() - before
            self._held = None

    def _queue(self, queues, host, func, *args, **kwargs):
        start = max([host, *(self.done(q) for q in queues)])
        before = cpu_clock()
        try:
            return func(*args, **kwargs)
        finally:
            for queue in queues:
                self.queue_after(queue, start + cpu_clock() - before)

    def record(self, queue):
        """The time of an event queued on `queue` now."""
        return max(self.host(), self.done(queue))

    def wait(self, until):
        """The host waits until the host-time second `until`."""
        self.waited += max(0.0, until - self.host())

    def queue_after(self, queue, until):
        """Work queued on `queue` from now on starts no earlier than `until` (a stream's wait)."""
        self.queues[queue] = max(self.done(queue), until)
        self.free[queue[0]] = max(self.free[queue[0]], self.queues[queue])
