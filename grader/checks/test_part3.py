"""Part 3: seeing the transfer. The prints are read from the trace, in order with the copy of the
activation: the tensor layer1 produced that layer2 consumes, followed storage by storage."""
from grader.checks import expect, fail, rubric, trace
from grader.checks.flow import Flow

HINT = "handout Part 3"


def _lines(events):
    """(text, index of its first event) of each printed line, in order."""
    lines, current, start = [], "", None
    for i, event in enumerate(events):
        if event.kind == "print":
            for piece in event.text.splitlines(keepends=True):
                start = i if start is None else start
                current += piece
                if piece.endswith("\n"):
                    lines.append((" ".join(current.split()), start))
                    current, start = "", None
    if current:
        lines.append((" ".join(current.split()), start))
    return lines


@rubric("part3.prints_devices")
def test_prints_devices(probe):
    facts = probe("forward")
    verbose = facts.verbose
    if verbose.error:
        fail(f"forward(x, verbose=True) failed: {verbose.error}")
    events = trace(verbose.events).events
    lines = _lines(events)
    printed = [text for text, _ in lines]
    moves = Flow(events).activation_copies()  # what carried layer1's output to layer2, followed by storage
    if not moves:
        fail(f"forward(x, verbose=True) printed {printed} but never moved the activation, layer1's output that "
             f"layer2 reads, from cuda:0 to cuda:1; the lines must surround that move ({HINT})")
    first, last = moves[0], moves[-1]
    expected = [f"Before move: {events[first].source}", f"After move: {events[last].device}"]
    before = [text for text, at in lines if at < first and text.startswith("Before move:")]
    after = [text for text, at in lines if at > last and text.startswith("After move:")]
    expect(before == expected[:1] and after == expected[1:],
           f"forward(x, verbose=True) printed {printed}; expected {expected[0]!r} just before the activation's "
           f"move and {expected[1]!r} just after it, each naming the tensor's device at that moment ({HINT})")
    quiet = (facts.retry or facts.cpu).printed
    expect(not quiet, f"forward(x) without verbose printed {quiet!r}; it should print nothing")
