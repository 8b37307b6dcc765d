"""Part 6 (bonus): pipelining micro-batches so that both GPUs work at once. Judged against the
grader's own unsplit model with the same weights, on the modelled timeline of the student's ops."""
from grader import reference
from grader.checks import MATRIX_OPS, expect, fail, not_attempted, rubric, trace
from grader.contract import MICRO_BATCHES, PIPELINE_BATCH, SEEDS, SHAPES, SPLIT
from grader.timeline import from_facts

HINT = "Part 6: see PipelinedMPModel in starter/model.py, and run python -m grader.timeline"
FORWARD = ("stage 0", "stage 1", "transfer")


def _forward_ops(step):
    """The ops of a training step's forward pass (everything before backward), on the GPUs."""
    ops = []
    for event in trace(step.events).events:
        if event.kind == "op" and event.name == "backward":
            break
        if event.kind == "op" and event.device and event.device.startswith("cuda"):
            ops.append(event)
    return ops


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
    ops, baseline_ops = _forward_ops(facts.pipelined), _forward_ops(facts.reference)
    work, baseline_work = sum(o.flops or 0 for o in ops), sum(o.flops or 0 for o in baseline_ops)
    expect(abs(work - baseline_work) <= 0.05 * baseline_work,
           f"the forward pass does {work / baseline_work:.2f} times the work of the same layers unsplit: compute "
           f"each micro-batch once, and nothing else ({HINT})")
    chunks = sum(1 for o in ops if o.device == "cuda:0" and o.name in MATRIX_OPS)
    expect(chunks >= MICRO_BATCHES,
           f"layer1 ran {chunks} time(s) in the forward pass; a batch of {PIPELINE_BATCH} in micro-batches of {SPLIT} "
           f"needs {MICRO_BATCHES}: split the batch with x.split(self.split_size) ({HINT})")
    pipelined = from_facts(facts.pipelined, f"PipelinedMPModel({SPLIT})")
    unsplit = from_facts(facts.reference, "the same layers, unsplit")
    ms = 1e3
    expect(pipelined.overlap_of(FORWARD) > 0.05 * pipelined.span(FORWARD),
           f"in the forward pass the GPUs barely work at once ({pipelined.overlap_of(FORWARD) * ms:.3f} of "
           f"{pipelined.span(FORWARD) * ms:.3f} ms): queue micro-batch i on cuda:1 before micro-batch i+1 on "
           f"cuda:0, and do not wait for the GPUs inside the loop ({HINT})")
    expect(pipelined.span(FORWARD) < 0.95 * unsplit.span(FORWARD),
           f"the forward pass at a batch of {PIPELINE_BATCH} takes {pipelined.span(FORWARD) * ms:.3f} ms in "
           f"micro-batches of {SPLIT}, no faster than {unsplit.span(FORWARD) * ms:.3f} ms unsplit ({HINT})")
