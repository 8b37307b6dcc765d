"""Part 3: seeing the transfer."""
from grader.checks import expect, fail, rubric

EXPECTED = ["Before move: cuda:0", "After move: cuda:1"]


@rubric("part3.prints_devices")
def test_prints_devices(probe):
    facts = probe("forward")
    verbose = facts["verbose"]
    if "error" in verbose:
        fail(f"forward(x, verbose=True) failed: {verbose['error']}")
    lines = [" ".join(line.split()) for line in verbose["printed"].splitlines()]
    found = [line for line in lines if line in EXPECTED]
    expect(found == EXPECTED,
           f"forward(x, verbose=True) printed {verbose['printed']!r}; expected the lines "
           f"{EXPECTED[0]!r} then {EXPECTED[1]!r}, around x.to(device1) (handout Part 3)")
    expect(not facts["printed"], f"forward(x) without verbose printed {facts['printed']!r}; it should print nothing")
