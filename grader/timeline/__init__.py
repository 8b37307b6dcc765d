"""Per-GPU timelines: when each GPU is busy during a training step, and how much it idles.

On real GPUs the intervals are the CUDA kernels and copies torch.profiler saw. On virtual GPUs,
which compute synchronously on the CPU, they are *modelled* from the runtime's trace:

* each virtual GPU is an in-order stream; the host enqueues work without waiting, LAUNCH seconds
  an op, and an op starts when its GPU has finished the work queued before it;
* a copy between GPUs starts once its source GPU has finished the work queued before it (the data
  it copies) and occupies the destination's stream for nbytes / GPU_BANDWIDTH; a copy from or to
  the host occupies its GPU for nbytes / HOST_BANDWIDTH while the host waits;
* synchronize and host reads (`.item()`) make the host wait for the GPU, an event's synchronize
  for the work queued before the event; a stream's `wait_event` or `wait_stream` makes its GPU's
  later work wait for the event's or the other stream's work (all streams of a GPU are one queue:
  kernels of one GPU never run concurrently);
* an op lasts its floating-point operations at GPU_FLOPS (the cost model: 2 per multiply-add of
  a matrix product, one per output element otherwise); `loss.backward()` runs out of the
  runtime's sight, so it is modelled as the mirror image of the forward: each forward op again,
  costing twice as much, in reverse order, on the same GPU, and each copy between GPUs reversed.
"""
import dataclasses

from grader.facts import Interval

LAUNCH = 5e-6  # seconds of host time to enqueue an op
GPU_FLOPS = 2e12  # floating-point operations a second of one virtual GPU
GPU_BANDWIDTH = 25e9  # bytes/s between GPUs (PCIe 4 class; NVLink is faster)
HOST_BANDWIDTH = 12e9  # bytes/s between host and GPU (pageable memory)
PHASES = {"stage 0": "0", "stage 1": "1", "transfer": "T", "backward": "B", "step": "S"}


@dataclasses.dataclass(frozen=True)
class Timeline:
    title: str
    intervals: list
    gpus: int = 2
    modelled: bool = True

    @property
    def wall(self):
        return max((i.end for i in self.intervals), default=0.0) - min((i.start for i in self.intervals), default=0.0)

    def busy(self, gpu, phases=PHASES):
        return sum(i.end - i.start for i in self.intervals if i.gpu == gpu and i.phase in phases)

    @property
    def idle_fraction(self):
        """1 - (busy cuda:0 + busy cuda:1) / (2 x wall), the handout's 'idle GPU problem' in a number."""
        return 1 - sum(self.busy(g) for g in range(self.gpus)) / (self.gpus * self.wall) if self.wall else 0.0

    @property
    def overlap(self):
        """Seconds both GPUs computed forward or backward work at once (the optimizer's per-GPU
        updates are left out: they overlap with any split)."""
        return self.overlap_of(("stage 0", "stage 1", "transfer", "backward"))

    def overlap_of(self, phases):
        """The sum, over every pair of a cuda:0 and a cuda:1 interval of these phases, of the time
        both were busy: one sweep over their ends (linear in the intervals, after sorting)."""
        edges = sorted((t, step, i.gpu) for i in self.intervals if i.gpu in (0, 1) and i.phase in phases
                       for t, step in ((i.start, 1), (i.end, -1)) if i.end > i.start)
        busy, total, last = [0, 0], 0.0, 0.0
        for t, step, gpu in edges:
            total += (t - last) * busy[0] * busy[1]
            busy[gpu] += step
            last = t
        return total

    def span(self, phases):
        """Seconds from the first to the last interval of these phases."""
        chosen = [i for i in self.intervals if i.phase in phases]
        return max(i.end for i in chosen) - min(i.start for i in chosen) if chosen else 0.0


def model(events, title, gpus=2):
    """The modelled Timeline of a virtual run's trace events (grader.trace.Event)."""
    replay = _Replay(gpus)
    for e in events:
        replay.event(e)
    return Timeline(title, replay.intervals, gpus)


class _Replay:
    """The model's state while it replays a trace: the host's time, when each GPU's queue is
    empty, the intervals so far, and the forward pass the backward pass mirrors."""

    def __init__(self, gpus):
        self.host, self.free, self.intervals, self.forward = 0.0, [0.0] * gpus, [], []
        self.recorded = {}  # CUDA event number -> when its GPU reached it
        self.stepping = False  # after backward: the optimizer's ops

    def event(self, e):
        gpu = _gpu(e.device)
        if e.kind == "op" and e.name == "backward":
            self.backward()
        elif e.kind == "op" and gpu is not None:
            self.run(gpu, e.flops / GPU_FLOPS, "step" if self.stepping else f"stage {gpu}", e.name)
            self.forward.append(e)
        elif e.kind == "transfer":
            self.copy(_gpu(e.source), gpu, e.nbytes, "transfer")
            self.forward.append(e)
        elif e.kind == "cuda_event":
            self.stream_event(e, gpu)
        elif e.kind == "sync":
            until = self.recorded.get(e.ids[0], 0.0) if e.name == "event.synchronize" and e.ids else self.free[gpu]
            self.host = max(self.host, until)

    def stream_event(self, e, gpu):
        if e.name == "record" and e.ids:
            self.recorded[e.ids[0]] = max(self.host, self.free[gpu])
        elif e.name == "wait" and e.ids:
            self.free[gpu] = max(self.free[gpu], self.recorded.get(e.ids[0], 0.0))
        elif e.name == "wait_stream":
            self.free[gpu] = max(self.free[gpu], self.free[_gpu(e.source)])

    def backward(self):
        for f in reversed(self.forward):
            if f.kind == "op":
                self.run(_gpu(f.device), 2 * f.flops / GPU_FLOPS, "backward", f.name)
            elif _gpu(f.source) is not None:  # the input's copy from the host has no gradient
                self.copy(_gpu(f.device), _gpu(f.source), f.nbytes, "backward")
        self.forward, self.stepping = [], True

    def run(self, gpu, seconds, phase, name, after=0.0):
        start = max(self.host, self.free[gpu], after)
        self.free[gpu] = start + seconds
        self.intervals.append(Interval(gpu, start, self.free[gpu], phase, name))
        self.host += LAUNCH

    def copy(self, source, destination, nbytes, phase):
        if source is not None and destination is not None:
            self.run(destination, nbytes / GPU_BANDWIDTH, phase, "copy", after=self.free[source])
        else:  # to or from the host, which waits for it
            gpu = destination if source is None else source
            self.run(gpu, nbytes / HOST_BANDWIDTH, phase, "copy")
            self.host = max(self.host, self.free[gpu])


def _gpu(device):
    return int(device.split(":")[1]) if device and device.startswith("cuda") else None


def strip(timeline, width=72):
    """The timeline as one text row per GPU: a character per time slice for the phase that fills
    most of it (PHASES), '.' where the GPU idles."""
    begin = min((i.start for i in timeline.intervals), default=0.0)
    slice_ = timeline.wall / width or 1.0
    rows = []
    for gpu in range(timeline.gpus):
        cells = []
        for n in range(width):
            lo, hi = begin + n * slice_, begin + (n + 1) * slice_
            cover = {}
            for i in timeline.intervals:
                if i.gpu == gpu:
                    cover[i.phase] = cover.get(i.phase, 0.0) + max(0.0, min(i.end, hi) - max(i.start, lo))
            phase = max(cover, key=cover.get, default=None)
            cells.append(PHASES[phase] if phase and cover[phase] >= slice_ / 2 else ".")
        rows.append(f"  cuda:{gpu} |{''.join(cells)}|")
    return rows


def describe(timeline):
    kind = "modelled on virtual GPUs" if timeline.modelled else "measured on real GPUs"
    return (f"{timeline.title} ({kind}): {timeline.wall * 1e3:.2f} ms, idle fraction "
            f"{timeline.idle_fraction:.0%}, GPUs overlapping {timeline.overlap * 1e3:.2f} ms")


COLOURS = {"stage 0": "#4c78a8", "stage 1": "#f58518", "transfer": "#e45756", "backward": "#72b7b2", "step": "#b279a2"}


MIN_WIDTH = 3.0  # pixels: the shortest phase (the optimizer's step) stays visible


def svg(timelines, width=960):
    """The timelines one above the other on one time axis in milliseconds, each phase at least
    MIN_WIDTH wide, the legend giving each phase's total time per GPU."""
    left, right = 130, width - 20
    span = max(t.wall for t in timelines) or 1e-9
    scale = (right - left) / span
    row, y, parts = 26, 50, []
    modelled = any(t.modelled for t in timelines)
    heading = "Your training step, GPU by GPU: coloured when the GPU works, grey when it waits"
    source = ("virtual GPUs: times modelled from the ops your code ran (2 TFLOP/s a GPU, 25 GB/s between them)"
              if modelled else "real GPUs: the kernels and copies torch.profiler measured")
    parts.append(f'<text x="10" y="22" font-size="15" font-weight="bold">{_escape(heading)}</text>')
    parts.append(f'<text x="10" y="40" font-size="12" fill="#555555">{_escape(source)}</text>')
    for t in timelines:
        parts.append(f'<text x="10" y="{y + 14}" font-size="13">{_escape(describe(t))}</text>')
        y += 22
        begin = min(i.start for i in t.intervals)
        for gpu in range(t.gpus):
            parts.append(f'<text x="10" y="{y + 17}" font-size="13">cuda:{gpu}</text>')
            parts.append(f'<rect x="{left}" y="{y}" width="{right - left}" height="{row - 4}" fill="#eeeeee"/>')
            for i in (i for i in t.intervals if i.gpu == gpu):
                x, w = left + (i.start - begin) * scale, max((i.end - i.start) * scale, MIN_WIDTH)
                label = f"{i.phase}: {i.name}, {(i.end - i.start) * 1e3:.3f} ms"
                parts.append(f'<rect x="{x:.2f}" y="{y}" width="{w:.2f}" height="{row - 4}" '
                             f'fill="{COLOURS[i.phase]}"><title>{_escape(label)}</title></rect>')
            y += row
        y += 14
    parts += _axis(left, right, y, span)
    y += 40
    parts.append(f'<text x="10" y="{y + 12}" font-size="12">Each phase, and its time in {_escape(timelines[0].title)} '
                 'on cuda:0 / cuda:1:</text>')
    y += 20
    for n, (phase, colour) in enumerate(COLOURS.items()):
        totals = " / ".join(f"{timelines[0].busy(g, (phase,)) * 1e3:.3f}" for g in range(timelines[0].gpus))
        x = 10 + n * 180
        parts.append(f'<rect x="{x}" y="{y}" width="14" height="14" fill="{colour}"/>')
        parts.append(f'<text x="{x + 20}" y="{y + 12}" font-size="12">{phase}: {totals} ms</text>')
    height = y + 30
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>{"".join(parts)}</svg>\n')


def _axis(left, right, y, span):
    """A time axis under the rows: ticks at round milliseconds."""
    ms = span * 1e3
    step = next(s for s in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, float("inf"))
                if ms / s <= 8)
    parts = [f'<line x1="{left}" y1="{y}" x2="{right}" y2="{y}" stroke="#333333"/>']
    tick = 0.0
    while tick <= ms + 1e-12 and step != float("inf"):
        x = left + tick / ms * (right - left)
        parts.append(f'<line x1="{x:.2f}" y1="{y}" x2="{x:.2f}" y2="{y + 5}" stroke="#333333"/>')
        parts.append(f'<text x="{x:.2f}" y="{y + 18}" font-size="11" text-anchor="middle">{tick:g}</text>')
        tick += step
    parts.append(f'<text x="{right}" y="{y + 32}" font-size="11" text-anchor="end">time (ms)</text>')
    return parts


def _escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def from_facts(step, title):
    """The Timeline of one probed training step (a grader.facts.Step): modelled from its trace on
    virtual GPUs, or the profiler's intervals on real ones."""
    if step.intervals is not None:
        return Timeline(title, step.intervals, modelled=False)
    return model(step.events, title)


def chrome_trace(timelines):
    """The timelines in Chrome's trace format, which Perfetto (ui.perfetto.dev) and
    chrome://tracing open: one process per model, one thread per GPU, times in microseconds."""
    events = []
    for pid, t in enumerate(timelines):
        label = f"{t.title} ({'modelled on virtual GPUs' if t.modelled else 'torch.profiler'})"
        events.append({"name": "process_name", "ph": "M", "pid": pid, "args": {"name": label}})
        for gpu in range(t.gpus):
            events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": gpu, "args": {"name": f"cuda:{gpu}"}})
        events += [{"name": i.name, "cat": i.phase, "ph": "X", "pid": pid, "tid": i.gpu,
                    "ts": i.start * 1e6, "dur": (i.end - i.start) * 1e6} for i in t.intervals]
    return {"traceEvents": events, "displayTimeUnit": "ms"}
