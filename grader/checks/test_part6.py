"""Part 6 (bonus): pipelining micro-batches so that both GPUs work at once."""
from grader.checks import expect, fail, rubric
from grader.probes import PIPELINE_BATCH, SPLIT
from grader.timeline import describe, from_facts

HINT = "Part 6: see PipelinedMPModel in starter/model.py, and run python -m grader.timeline"


@rubric("part6.pipelined")
def test_pipelined(probe):
    facts = probe("pipeline")
    differences = facts["differences"]
    if differences["output"] is None:
        fail(f"PipelinedMPModel({SPLIT}) returns an output or gradients of another shape than SimpleMPModel's")
    expect(differences["output"] < 1e-4 and differences["gradient"] < 1e-4,
           f"with SimpleMPModel's weights, PipelinedMPModel({SPLIT}) differs from it by up to "
           f"{differences['output']:.3g} in the output and {differences['gradient']:.3g} in the gradients: "
           "run every micro-batch through both stages and concatenate the outputs in order")
    simple = from_facts(facts["simple"], "SimpleMPModel")
    pipelined = from_facts(facts["pipelined"], f"PipelinedMPModel({SPLIT})")
    expect(pipelined.overlap > 0.05 * pipelined.wall,
           f"{describe(pipelined)}: the GPUs barely work at once. Queue micro-batch i on cuda:1 before "
           f"micro-batch i+1 on cuda:0 ({HINT})")
    expect(pipelined.wall < 0.95 * simple.wall,
           f"one training step at a batch of {PIPELINE_BATCH}: {describe(pipelined)}, no faster than "
           f"{describe(simple)} ({HINT})")
