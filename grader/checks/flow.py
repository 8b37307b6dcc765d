"""What depends on what in a trace, as CUDA orders it and as data flows: the checks judge these,
never an op's name or its place in the list, which unrelated work can imitate.

`Order` replays the streams: work on one stream runs in order; a copy between GPUs waits for the
current streams of both and both wait for it; `wait_stream` and an event's `wait` order a stream
after another's work; and a wait (grader.trace.Event.waits_for) covers what its stream, event or
GPU was ordered after. `Flow` follows storages from op to op, from the grader's watched tensors.
"""
import bisect

import pytest

QUEUES_CAP = 64  # the streams the checks follow in one call, all GPUs together: far past the lab's needs


def _queue(device, stream):
    return device, stream or 0


def queue_of(event):
    """The queue ((GPU, stream)) an op or a record went to."""
    return _queue(event.device, event.stream)


def _join(*clocks):
    """The latest index of each queue over `clocks` ({queue: index of its last op ordered before})."""
    joined = {}
    for clock in clocks:
        for queue, index in clock.items():
            if index > joined.get(queue, -1):
                joined[queue] = index
    return joined


def on_gpu(device):
    return bool(device) and device.startswith("cuda")


class Order:
    """For each wait, the last op of each queue ((GPU, stream)) it waits for; for each CUDA event,
    the last op of each queue its recording was ordered after."""

    def __init__(self, events):
        queues = {_queue(e.device, e.stream) for e in events if e.kind in ("op", "transfer", "cuda_event")}
        if len(queues) > QUEUES_CAP:  # each wait's clock holds every queue: the replay would grow with their square
            pytest.fail(f"the code used {len(queues):,} streams in one call; the grader follows at most {QUEUES_CAP} "
                        "(the lab needs one or two per GPU)", pytrace=False)
        self.waits = []  # (index of the wait, {queue: index of the last op it covers there})
        self.recorded = {}  # event number -> (index of its record, its GPU, {queue: last op before it})
        # Each queue's clock, and each GPU's whole (the join of its queues' clocks, what a device-wide
        # wait covers). Clocks only grow, so a GPU's whole is joined with each new clock as it is set,
        # never recomputed from all of them: the replay stays linear in the events.
        self._clocks, self._whole = {}, {}
        clocks = self._clocks
        for i, e in enumerate(events):
            here = _queue(e.device, e.stream)
            if e.kind == "op" and on_gpu(e.device):
                self._set(here, {**clocks.get(here, {}), here: i})
            elif e.kind == "transfer":
                self._copy(i, e)
            elif e.kind == "cuda_event" and e.name == "record" and e.ids:
                self.recorded[e.ids[0]] = (i, e.device, clocks.get(here, {}))
            elif e.kind == "cuda_event" and e.name == "wait" and e.ids:
                self._set(here, _join(clocks.get(here, {}), self.recorded.get(e.ids[0], (0, 0, {}))[2]))
            elif e.kind == "cuda_event" and e.name == "wait_stream":
                self._set(here, _join(clocks.get(here, {}), clocks.get(_queue(e.source, e.source_stream), {})))
            elif e.kind == "sync":
                what, target = e.waits_for()
                if what == "event":
                    covered = self.recorded.get(target, (0, 0, {}))[2]
                elif what == "stream":
                    covered = clocks.get(target, {})
                else:
                    covered = self._whole.get(target, {})
                self.waits.append((i, covered))

    def _set(self, queue, clock):
        self._clocks[queue] = clock
        self._whole[queue[0]] = _join(self._whole.get(queue[0], {}), clock)

    def _copy(self, i, e):
        ends = [_queue(d, s) for d, s in ((e.source, e.source_stream), (e.device, e.stream)) if on_gpu(d)]
        joined = {**_join(*(self._clocks.get(q, {}) for q in ends)), **{q: i for q in ends}}
        for queue in ends:
            self._set(queue, joined)
        if e.device == "cpu" and on_gpu(e.source) and e.name != "non_blocking":  # a copy to the host waits for it
            self.waits.append((i, joined))

    @staticmethod
    def covers(clock, events, ops):
        """Whether `clock` is ordered after every op (indices into `events`) of `ops`."""
        return all(clock.get(queue_of(events[i]), -1) >= i for i in ops)


class Flow:
    """Where each event's inputs came from, followed storage by storage: the labels of the
    grader's watched tensors ("x", "y", "w1"...) they descend from, and which events fed which."""

    def __init__(self, events):
        self.events = events
        self.inputs = []  # per event: the labels its inputs descend from
        labels = {}  # storage number -> the labels its data descends from
        self._writers = {}  # storage number -> the events that wrote it, in order
        for i, e in enumerate(events):
            came = frozenset(e.reads or ()).union(*(labels.get(s, ()) for s in e.args or ()))
            self.inputs.append(came)
            if e.kind in ("op", "transfer"):
                for storage in e.out or ():
                    labels[storage] = labels.get(storage, frozenset()) | came
                    self._writers.setdefault(storage, []).append(i)

    def uses(self, label):
        """The ops that read the watched tensor `label` itself (a layer's weight: the layer ran)."""
        return [i for i, e in enumerate(self.events) if e.kind == "op" and label in (e.reads or ())]

    def feeding(self, targets):
        """The events whose output the events `targets` read, directly or through other events.
        Linear: each storage's writers are taken once, below the latest reader seen for it so far
        (a reader before that one needs no writer the later one has not already brought)."""
        fed, stack, below = set(), list(targets), {}  # storage -> the reader its writers were taken below
        while stack:
            reader = stack.pop()
            for storage in self.events[reader].args or ():
                taken = below.get(storage, 0)
                if reader <= taken:
                    continue
                below[storage] = reader
                writers = self._writers.get(storage, [])
                for writer in writers[bisect.bisect_left(writers, taken):bisect.bisect_left(writers, reader)]:
                    if writer not in fed:
                        fed.add(writer)
                        stack.append(writer)
        return fed

    def activation_copies(self):
        """The copies that carry layer1's output to layer2: their data descends from an op that
        read w1, and an op that read w2 consumed it (directly, or through ops after the copy)."""
        return sorted(i for i in self.feeding(self.uses("w2"))
                      if self.events[i].kind == "transfer" and "w1" in self.inputs[i])

    def read_values(self, needs=frozenset()):
        """The values read into Python, in order (each element of a tensor read at once), from data
        that descends from all of `needs`."""
        values = []
        for e, came in zip(self.events, self.inputs):
            if e.kind in ("sync", "value") and needs <= came:
                values += e.values or ([] if e.value is None else [e.value])
        return values
