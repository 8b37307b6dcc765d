"""Part 1: the model split across two GPUs, and its forward pass."""
from grader import reference
from grader.checks import at_line, expect, fail, rubric, trace
from grader.checks.flow import Flow
from grader.contract import BATCH, HOST_READS, SEEDS

HINT = "handout Part 1"


def _placed(probe, weight, bias, shape, device):
    layers = probe("construct").layers
    if weight not in layers or bias not in layers:
        fail(f"SimpleMPModel() has no Linear{shape} layer (looked for parameters of those shapes)")
    for role in (weight, bias):
        if layers[role].type:
            fail(f"{layers[role].name} is a {layers[role].type}, not a plain torch Parameter: the grader "
                 "reads placement from torch itself, so use nn.Linear or nn.Parameter")
    where = {layers[weight].device, layers[bias].device}
    expect(
        where == {device},
        f"Linear{shape} ({layers[weight].name}, {layers[bias].name}) is on {' and '.join(sorted(where))}; "
        f"expected weight and bias on {device} after SimpleMPModel() ({HINT}: .to(device))",
    )


def _completed(facts):
    """The forward call that returned (x on the CPU, or retried on cuda:0), or a failure naming
    the root cause when neither did."""
    attempt = facts.retry or facts.cpu
    if attempt.error:
        fail(f"model(x) did not return: {facts.cpu.error}")
    return attempt


def _output(facts):
    _completed(facts)
    out = facts.output
    if out.type:
        fail(f"model(x) returned a {out.type}, not a plain torch.Tensor")
    return out


@rubric("part1.layer1_on_cuda0")
def test_layer1_on_cuda0(probe):
    _placed(probe, "w1", "b1", (1000, 2000), "cuda:0")


@rubric("part1.layer2_on_cuda1")
def test_layer2_on_cuda1(probe):
    _placed(probe, "w2", "b2", (2000, 1000), "cuda:1")


@rubric("part1.input_moved_to_cuda0")
def test_input_moved_to_cuda0(probe):
    """Judged on what the forward did with a CPU batch before anything else went wrong."""
    attempt = probe("forward").cpu
    ops = trace(attempt.events).of("op")
    if not ops:
        fail(f"forward must move the CPU batch to cuda:0 itself ({HINT}: x = x.to(device0)); "
             + (attempt.error or "it computed nothing"))
    expect(ops[0].device == "cuda:0",
           f"the first computation of forward ({ops[0].name}{at_line(ops[0])}) ran on {ops[0].device}; "
           f"expected cuda:0, where layer1 lives ({HINT})")


@rubric("part1.output_on_cuda1")
def test_output_on_cuda1(probe):
    out = _output(probe("forward"))
    expect(out.device == "cuda:1" and out.shape == [BATCH, 1000],
           f"model(x) for a batch of {BATCH} returned a tensor of shape {tuple(out.shape)} on {out.device}; "
           f"expected shape ({BATCH}, 1000) on cuda:1, the GPU of the last layer ({HINT})")


@rubric("part1.forward_math")
def test_forward_math(probe, grading):
    out = _output(probe("forward"))
    expect(out.shape == [BATCH, 1000], f"the output has shape {tuple(out.shape)}, not ({BATCH}, 1000)")
    expected = reference.output(SEEDS["forward"], BATCH)
    error = reference.largest_difference(reference.tensor(grading.outcome("forward").blobs, "output", out.shape),
                                         expected)
    expect(error < 1e-4,
           f"with the grader's weights the output differs from relu(W2 relu(W1 x + b1) + b2) by up to {error:.3g}: "
           f"check the order of the layers and the two ReLUs ({HINT})")


@rubric("part1.single_transfer")
def test_single_transfer(probe):
    events = trace(_completed(probe("forward")).events).events
    copies = [i for i, e in enumerate(events) if e.kind == "transfer" and e.source != "cpu"]  # (from the host: free)
    moves = [f"{events[i].source}->{events[i].device}{at_line(events[i])}" for i in copies]
    reads = [f"{e.name} of a {e.device} tensor{at_line(e)}" for e in events
             if e.kind == "sync" and e.name in HOST_READS]
    expect(
        [(events[i].source, events[i].device) for i in copies] == [("cuda:0", "cuda:1")]
        and Flow(events).activation_copies() == copies and not reads,
        f"one forward made the copies [{', '.join(moves) or 'none'}]"
        + (f" and read GPU values on the host ({'; '.join(reads)})" if reads else "")
        + f"; expected exactly one: the activation, layer1's output that layer2 reads, cuda:0->cuda:1, between the "
        f"layers ({HINT}: x.to(device1))",
    )
