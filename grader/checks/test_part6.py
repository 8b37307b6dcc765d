"""Part 6 (bonus): pipelining micro-batches so that both GPUs work at once. Judged against the
grader's own unsplit model with the same weights, on the modelled timeline of the student's ops."""
from grader import reference
from grader.checks import expect, fail, not_attempted, rubric, trace
from grader.checks.flow import Flow
from grader.contract import MICRO_BATCHES, PIPELINE_BATCH, SEEDS, SHAPES, SPLIT
from grader.timeline import from_facts

HINT = "Part 6: see PipelinedMPModel in starter/model.py, and run python -m grader.timeline"
FORWARD = ("stage 0", "stage 1", "transfer")
COMPUTE = ("stage 0", "stage 1")  # the overlap that pipelining buys: both GPUs computing, not copying


def _forward(step):
    """The events of a training step's forward pass: everything before backward."""
    events = trace(step.events).events
    return events[:next((i for i, e in enumerate(events) if e.kind == "op" and e.name == "backward"), len(events))]


def _forward_ops(step):
    """The ops of a training step's forward pass, on the GPUs."""
    return [e for e in _forward(step) if e.kind == "op" and e.device and e.device.startswith("cuda")]


def _micro_batches(step):
    """(times layer1 ran, times layer2 ran on layer1's output) in the forward pass, by the layers'
    weights and the data they read, whatever the ops are called."""
    flow = Flow(_forward(step))
    return len(flow.uses("w1")), sum(1 for i in flow.uses("w2") if "w1" in flow.inputs[i])


@rubric("part6.pipelined")
def test_pipelined(probe, grading):
    facts = probe("pipeline")
    if not facts.attempted:
        not_attempted(f"optional, and not started yet: {facts.reason}")
    if facts.shape != [PIPELINE_BATCH, 1000]:
        fail(f"PipelinedMPModel({SPLIT})(x) for a batch of {PIPELINE_BATCH} returned shape {tuple(facts.shape)}, "
             f"not ({PIPELINE_BATCH}, 1000)")
    expected, expected_grads = reference.gradients(SEEDS["pipeline"], PIPELINE_BATCH)
    blobs = grading.outcome("pipeline").blobs
    output = reference.largest_difference(reference.tensor(blobs, "output", facts.shape), expected)
    gradient = max(reference.largest_difference(reference.tensor(blobs, f"grad_{r}", shape), expected_grads[r])
                   if f"grad_{r}" in blobs else float("inf") for r, shape in SHAPES.items())
    expect(output < 1e-4 and gradient < 1e-4,
           f"PipelinedMPModel({SPLIT}) differs from relu(W2 relu(W1 x + b1) + b2), on the grader's weights, by up "
           f"to {output:.3g} in the output and {gradient:.3g} in the gradients: run every micro-batch through both "
           "stages and concatenate the outputs in order")
    baseline = facts.reference if grading.mode == "real" else grading.shared().baseline
    ops, baseline_ops = _forward_ops(facts.pipelined), _forward_ops(baseline)
    work, baseline_work = sum(o.flops or 0 for o in ops), sum(o.flops or 0 for o in baseline_ops)
    expect(abs(work - baseline_work) <= 0.05 * baseline_work,
           f"the forward pass does {work / baseline_work:.2f} times the work of the same layers unsplit: compute "
           f"each micro-batch once, and nothing else ({HINT})")
    first, second = _micro_batches(facts.pipelined)
    expect(min(first, second) >= MICRO_BATCHES,
           f"layer1 ran {first} time(s) in the forward pass and layer2 {second} time(s) on its output; a batch of "
           f"{PIPELINE_BATCH} in micro-batches of {SPLIT} needs {MICRO_BATCHES} of each: split the batch with "
           f"x.split(self.split_size) and run each micro-batch through both layers ({HINT})")
    pipelined = from_facts(facts.pipelined, f"PipelinedMPModel({SPLIT})")
    unsplit = from_facts(baseline, "the same layers, unsplit")
    ms = 1e3
    expect(pipelined.overlap_of(COMPUTE) > 0.05 * pipelined.span(FORWARD),
           f"in the forward pass the GPUs barely compute at once ({pipelined.overlap_of(COMPUTE) * ms:.3f} of "
           f"{pipelined.span(FORWARD) * ms:.3f} ms): queue micro-batch i on cuda:1 before micro-batch i+1 on "
           f"cuda:0, and do not wait for the GPUs inside the loop ({HINT})")
    expect(pipelined.span(FORWARD) < 0.95 * unsplit.span(FORWARD),
           f"the forward pass at a batch of {PIPELINE_BATCH} takes {pipelined.span(FORWARD) * ms:.3f} ms in "
           f"micro-batches of {SPLIT}, no faster than {unsplit.span(FORWARD) * ms:.3f} ms unsplit ({HINT})")
