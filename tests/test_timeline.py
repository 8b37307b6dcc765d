"""The timelines a student looks at: the idle GPU of SimpleMPModel, the overlap of pipelining."""
import json
import random
import re

import pytest
from corpus import ROOT
from helpers import python_m

from grader.contract import PIPELINE_BATCH, SPLIT
from grader.facts import Interval, Shared
from grader.sandbox import isolation, runner
from grader.timeline import GPU_BANDWIDTH, GPU_FLOPS, MIN_WIDTH, PHASES, Timeline, from_facts, model, strip
from grader.trace import Event, Trace
from grader.virtual import virtual_gpus

FORWARD = ("stage 0", "stage 1", "transfer")
PIPELINE_SPLITS = PIPELINE_BATCH // SPLIT


@pytest.fixture(scope="module")
def timelines():
    zygote = runner.Runner(isolation.detect(), ["torch", "time"]).start()
    try:
        source = (ROOT / "solutions" / "model.py").read_text()
        session = zygote.grade(source, "model.py", "virtual", ["timeline"], runner.Limits(30, 4 * 2**30))
        drawn, shared = session.outcome("timeline").facts, Shared.from_json(zygote.shared)
    finally:
        zygote.close()
    return {"simple": from_facts(drawn.simple.step, "simple"),
            "pipelined": from_facts(drawn.pipelined.step, "pipelined"),
            "reference": from_facts(shared.baseline, "reference")}


def test_the_shared_baseline_is_the_one_a_probe_takes_beside_a_submission():
    """Virtual GPUs model a step's timeline from its ops alone, so the grader's unsplit step taken
    once before any submission (facts.Shared) is the one a probe takes after a submission's step."""
    from grader.runner import probes
    from grader.runner.loader import load

    shared = Shared.from_json(probes.shared())
    trace = Trace(sources=["model.py"])
    with virtual_gpus(2, trace), probes.steady():
        probe = probes.Probe(load((ROOT / "solutions" / "model.py").read_text(), "model.py"), trace, "virtual")
        assert probes.pipeline(probe).reference is None  # virtual GPUs' baseline is the shared one
        beside = probes._baseline(probe, *probes._pipeline_batch(probe))
    assert from_facts(beside, "beside").intervals == from_facts(shared.baseline, "shared").intervals
    assert len(shared.baseline.events) > 10


def test_the_model_queues_each_gpu_in_order_and_copies_after_their_source():
    """The cost model alone, on a hand-written trace: stage 0, the copy, stage 1, backward, step."""
    mb = 4 * 2**20
    events = [Event("op", "linear", device="cuda:0", flops=int(2e9)), Event("transfer", "to", device="cuda:1",
              source="cuda:0", nbytes=mb), Event("op", "linear", device="cuda:1", flops=int(2e9)),
              Event("op", "backward", device="cuda:1"), Event("op", "sub_", device="cuda:0", flops=1000)]
    t = model(events, "hand-written")
    by_phase = {}
    for i in t.intervals:
        by_phase.setdefault(i.phase, []).append(i)
    stage0, copy, stage1 = by_phase["stage 0"][0], by_phase["transfer"][0], by_phase["stage 1"][0]
    assert stage0.end == pytest.approx(2e9 / GPU_FLOPS) and copy.start >= stage0.end
    assert copy.end - copy.start == pytest.approx(mb / GPU_BANDWIDTH) and stage1.start >= copy.end
    assert len(by_phase["backward"]) == 3 and by_phase["step"][0].gpu == 0  # the mirror image, then the step
    assert t.overlap == 0 and 0 < t.idle_fraction < 1


@pytest.mark.parametrize("wait", [Event("cuda_event", "wait", device="cuda:1", ids=[1]),
                                  Event("cuda_event", "wait_stream", device="cuda:1", source="cuda:0")],
                         ids=["wait_event", "wait_stream"])
def test_a_stream_wait_holds_back_its_gpus_later_work(wait):
    """cuda:1's op, with no copy to tie it to cuda:0, starts at once, unless its stream waits for
    cuda:0's event or stream; an event's synchronize waits for the work before the event only."""
    work = [Event("op", "linear", device="cuda:0", flops=int(2e9)), Event("cuda_event", "record", device="cuda:0",
                                                                          ids=[1])]
    later = [Event("op", "linear", device="cuda:1", flops=1000)]
    free, held = (model(work + between + later, "hand-written").intervals[-1] for between in ([], [wait]))
    assert free.start < 1e-4 and held.start >= 2e9 / GPU_FLOPS
    synced = model(work + [Event("sync", "event.synchronize", device="cuda:0", ids=[1]),
                           Event("op", "linear", device="cuda:0", flops=int(2e9))] + later, "hand-written")
    assert 2e9 / GPU_FLOPS <= synced.intervals[-1].start < synced.intervals[-2].end


def test_simple_model_leaves_one_gpu_idle(timelines):
    simple = timelines["simple"]
    assert simple.overlap == 0  # GPU 0 works, then GPU 1: never both
    assert 0.45 <= simple.idle_fraction <= 0.55  # the balanced split idles half the time
    assert {i.phase for i in simple.intervals} == {"stage 0", "stage 1", "transfer", "backward", "step"}
    first_on_1 = min(i.start for i in simple.intervals if i.gpu == 1 and i.phase == "stage 1")
    assert first_on_1 >= max(i.end for i in simple.intervals if i.gpu == 0 and i.phase == "stage 0")


def test_four_micro_batches_overlap_and_speed_up(timelines):
    pipelined, unsplit = timelines["pipelined"], timelines["reference"]
    assert PIPELINE_SPLITS == 4
    assert pipelined.overlap_of(FORWARD) > 0.2 * pipelined.span(FORWARD)
    assert pipelined.span(FORWARD) < 0.8 * unsplit.span(FORWARD)
    assert pipelined.idle_fraction < timelines["simple"].idle_fraction - 0.1


def test_strip_shows_each_gpu_busy_or_idle(timelines):
    rows = strip(timelines["simple"], width=40)
    assert [r[:9] for r in rows] == ["  cuda:0 ", "  cuda:1 "]
    assert rows[0][10] == "0" and rows[1][10] == "." and "1" in rows[1] and "B" in rows[0]


def test_tool_draws_both_models_labelled_virtual(tmp_path):
    run = python_m("grader.timeline", "--submission", "solutions/model.py", "--out", tmp_path)
    assert run.returncode == 0, run.stderr
    assert "SimpleMPModel (modelled on virtual GPUs)" in run.stdout and "idle fraction 50%" in run.stdout
    assert f"PipelinedMPModel({SPLIT})" in run.stdout
    picture = (tmp_path / "timeline.svg").read_text()
    assert picture.startswith("<svg") and "virtual GPUs: times modelled" in picture and picture.count(">cuda:0<") == 2
    assert "time (ms)" in picture and ">0.5</text>" in picture  # an axis with round milliseconds
    bars = r'<rect x="[0-9.]+" y="[0-9]+" width="([0-9.]+)" height="22" fill="#'
    widths = [float(w) for w in re.findall(bars, picture)]
    assert widths and min(widths) >= MIN_WIDTH  # the optimizer's step, a sliver of time, still shows
    trace = json.loads((tmp_path / "timeline.json").read_text())["traceEvents"]
    names = {e["args"]["name"] for e in trace if e["ph"] == "M" and e["name"] == "process_name"}
    assert names == {"SimpleMPModel (modelled on virtual GPUs)",
                     f"PipelinedMPModel({SPLIT}) (modelled on virtual GPUs)"}
    spans = [e for e in trace if e["ph"] == "X"]
    assert {(e["pid"], e["tid"]) for e in spans} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert all(e["dur"] >= 0 and e["cat"] in PHASES for e in spans)


def test_tool_draws_simple_model_alone_without_the_bonus(tmp_path):
    """A student who skips Part 6 still sees their idle GPU."""
    source = (ROOT / "solutions" / "model.py").read_text().replace(
        "        chunks = iter(", "        raise NotImplementedError(\"TODO Part 6\")\n        chunks = iter(")
    (tmp_path / "model.py").write_text(source)
    run = python_m("grader.timeline", "--submission", tmp_path / "model.py", "--out", tmp_path / "drawn")
    assert run.returncode == 0, run.stderr
    assert "idle fraction 50%" in run.stdout
    assert "PipelinedMPModel (the bonus) is not drawn: not written yet" in run.stdout
    assert (tmp_path / "drawn" / "timeline.svg").read_text().count(">cuda:0<") == 1


def test_tool_on_the_starter_says_what_is_missing(tmp_path):
    run = python_m("grader.timeline", "--out", tmp_path)
    assert run.returncode != 0 and "NotImplementedError: TODO" in run.stderr and "Traceback" not in run.stderr


def test_help_reads_whole():
    run = python_m("grader.timeline", "--help")
    assert run.returncode == 0 and run.stdout.rstrip().endswith("what torch.profiler measured.")
    assert "default: build/timeline" in " ".join(run.stdout.split())


def test_overlap_is_every_pair_of_intervals_both_busy_in_one_sweep():
    """The overlap the bonus is judged on is the sum over each pair of a cuda:0 and a cuda:1
    interval (streams may overlap on one GPU), computed in one sweep, not pair by pair."""
    draw = random.Random(3)
    intervals = [Interval(g, s, s + draw.uniform(0, 2), "stage 0", "op") for g in (0, 1)
                 for s in (draw.uniform(0, 10) for _ in range(40))]
    pairs = sum(max(0.0, min(a.end, b.end) - max(a.start, b.start))
                for a in intervals if a.gpu == 0 for b in intervals if b.gpu == 1)
    assert Timeline("t", intervals).overlap_of(("stage 0",)) == pytest.approx(pairs)
    many = [Interval(g, i * 1e-3, i * 1e-3 + 5e-4, "stage 0", "op") for g in (0, 1) for i in range(50_000)]
    assert Timeline("t", many).overlap_of(("stage 0",)) == pytest.approx(50_000 * 5e-4)


class _Counted(list):
    """A storage's writers that count how many are handed out, walked or sliced (a bisection's
    single reads are not handed out)."""

    handed = 0

    def __iter__(self):
        _Counted.handed += len(self)
        return super().__iter__()

    def __getitem__(self, index):
        taken = super().__getitem__(index)
        if isinstance(index, slice):
            _Counted.handed += len(taken)
        return taken


def _feeding_by_definition(flow, targets):
    """Flow.feeding as its docstring says: every writer, before its reader, of what a fed event read."""
    fed, stack = set(), list(targets)
    while stack:
        reader = stack.pop()
        for storage in flow.events[reader].args or ():
            for writer in flow._writers.get(storage, ()):
                if writer < reader and writer not in fed:
                    fed.add(writer)
                    stack.append(writer)
    return fed


def test_following_data_is_linear_in_the_trace():
    """The red team's pattern: two storages written back and forth thousands of times, each op
    reading many times from one of them. The checks follow each storage's writers once, not once
    per reader (it was quadratic: a submission could stall its own grading for minutes)."""
    import random

    from grader.checks.flow import Flow
    from grader.trace import Event

    rounds, fan = 2000, 50
    events = [Event("op", "cat", args=[0] * fan, out=[1]) if n % 2 == 0 else Event("op", "cat", args=[1], out=[0])
              for n in range(2 * rounds)]
    flow = Flow(events)
    flow._writers = {storage: _Counted(writers) for storage, writers in flow._writers.items()}
    _Counted.handed = 0
    assert flow.feeding([len(events) - 1]) == set(range(len(events) - 1))
    assert _Counted.handed <= len(events)  # each writer once (it was rounds x rounds)
    chance = random.Random(0)  # and the same answer as the definition on random traces
    for _ in range(50):
        events = [Event("op", "op", args=[chance.randrange(6) for _ in range(3)], out=[chance.randrange(6)])
                  for _ in range(60)]
        flow = Flow(events)
        targets = chance.sample(range(60), 3)
        assert flow.feeding(targets) == _feeding_by_definition(flow, targets)


def test_a_device_wide_wait_covers_every_stream_of_its_gpu_at_once():
    """Order's device-wide waits (torch.cuda.synchronize(d)) against their definition, the join of
    every clock of that GPU's streams at the wait, on random traces; and the replay's cost: a GPU's
    join is kept as its clocks grow, not recomputed at each wait (the red team's 19,700
    synchronizes over 64 streams took seconds per check)."""
    import random

    from grader.checks import flow
    from grader.trace import Event

    chance = random.Random(1)
    for _ in range(40):
        events = []
        for _ in range(80):
            device, stream = f"cuda:{chance.randrange(2)}", chance.randrange(3)
            kind = chance.choice(["op", "op", "wait_stream", "transfer", "sync"])
            if kind == "op":
                events.append(Event("op", "mm", device=device, stream=stream))
            elif kind == "wait_stream":
                events.append(Event("cuda_event", "wait_stream", device=device, stream=stream, source=device,
                                    source_stream=chance.randrange(3)))
            elif kind == "transfer":
                events.append(Event("transfer", "to", device="cuda:1", stream=stream, source="cuda:0",
                                    source_stream=chance.randrange(3)))
            else:
                events.append(Event("sync", "synchronize", device=device))
        order = flow.Order(events)
        for i, covered in order.waits:
            before = flow.Order(events[:i])  # the clocks as they stood at the wait
            expected = flow._join(*(c for q, c in before._clocks.items() if q[0] == events[i].device))
            assert covered == expected
    syncs = [Event("op", "mm", device="cuda:1", stream=s) for s in range(60)] + \
        [Event("sync", "synchronize", device="cuda:1")] * 5000
    joins = []
    real_join = flow._join
    flow._join = lambda *clocks: joins.append(sum(map(len, clocks))) or real_join(*clocks)
    try:
        flow.Order(syncs)
    finally:
        flow._join = real_join
    assert sum(joins) <= 60 * 61  # the GPU's join grows with its 60 streams once; 5,000 waits read it
