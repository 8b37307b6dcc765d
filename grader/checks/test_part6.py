"""Part 6 (bonus): pipelining micro-batches so that both GPUs work at once."""
from grader.checks import expect, fail, rubric
from grader.probes import PIPELINE_BATCH, SPLIT
from grader.timeline import from_facts

HINT = "Part 6: see PipelinedMPModel in starter/model.py, and run python -m grader.timeline"


@rubric("part6.pipelined")
def test_pipelined(probe):
    facts = probe("pipeline")
    differences = facts["differences"]
    if differences["output"] is None:
        fail(f"PipelinedMPModel({SPLIT})(x) for a batch of {PIPELINE_BATCH} does not return ({PIPELINE_BATCH}, 1000)")
    expect(differences["output"] < 1e-4 and differences["gradient"] < 1e-4,
           f"PipelinedMPModel({SPLIT}) differs from relu(W2 relu(W1 x + b1) + b2), with its own weights, by up "
           f"to {differences['output']:.3g} in the output and {differences['gradient']:.3g} in the gradients: "
           "run every micro-batch through both stages and concatenate the outputs in order")
    pipelined = from_facts(facts["pipelined"], f"PipelinedMPModel({SPLIT})")
    unsplit = from_facts(facts["unsplit"], f"PipelinedMPModel({PIPELINE_BATCH}), one micro-batch")
    forward, ms = ("stage 0", "stage 1", "transfer"), 1e3
    expect(pipelined.overlap_of(forward) > 0.05 * pipelined.span(forward),
           f"in the forward pass the GPUs barely work at once ({pipelined.overlap_of(forward) * ms:.3f} of "
           f"{pipelined.span(forward) * ms:.3f} ms): queue micro-batch i on cuda:1 before micro-batch i+1 on "
           f"cuda:0, and do not wait for the GPUs inside the loop ({HINT})")
    expect(pipelined.span(forward) < 0.95 * unsplit.span(forward),
           f"the forward pass at a batch of {PIPELINE_BATCH} takes {pipelined.span(forward) * ms:.3f} ms in "
           f"micro-batches of {SPLIT}, no faster than {unsplit.span(forward) * ms:.3f} ms in one ({HINT})")
