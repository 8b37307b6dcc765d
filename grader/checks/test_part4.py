"""Part 4: timing a forward pass whose work runs asynchronously on two GPUs."""
import math

from grader.checks import Timing, at_line, expect, fail, rubric
from grader.contract import LARGE_BATCH

HINT = "handout Part 4"


@rubric("part4.clock_after_sync")
def test_clock_after_sync(probe):
    timing = Timing(probe("time_forward").events, "time_forward()")
    end = timing.end()
    expect(timing.waited_before(end),
           f"the end clock{at_line(timing.events[end])} is read without first waiting for the forward's work: "
           "CUDA calls return before the GPUs finish, so the clock stops too early. A wait counts when it comes "
           f"after the forward: torch.cuda.synchronize(device), or an event recorded after it ({HINT})")


@rubric("part4.sync_covers_output_gpu")
def test_sync_covers_output_gpu(probe):
    timing = Timing(probe("time_forward").events, "time_forward()")
    waited = sorted({device for _, device in timing.waits})
    expect(waited, "nothing waits for the forward's work after it, so nothing waits for cuda:1, which computes "
                   f"the output ({HINT})")
    expect("cuda:1" in waited,
           f"after the forward the code waits only for {', '.join(waited)}; the output is computed on cuda:1, and "
           "torch.cuda.synchronize() without a device waits for the current GPU (cuda:0) only: use "
           "torch.cuda.synchronize(device1)")


@rubric("part4.seconds_plausible")
def test_seconds_plausible(probe):
    facts = probe("time_forward")
    timing, value = Timing(facts.events, "time_forward()"), facts.value
    if value is None:
        fail("time_forward() did not return a number; expected the seconds as a float")
    others = [m for e in timing.events if e.name == "elapsed_time" for m in [timing.bracketed(e)] if m is not None]
    others += timing.laps()
    measured = timing.measures(value) or any(math.isclose(value, m, rel_tol=1e-6, abs_tol=1e-9) for m in others)
    quoted = [*timing.differences(), *others[:3]]
    expect(measured,
           f"time_forward() returned {value!r}, which is not the difference of the clock readings "
           f"around the forward ({', '.join(f'{m:.6g}' for m in quoted) or 'none were read around it'}): "
           f"return end - start, in seconds, or its mean over the passes timed ({HINT})")
    large = facts.large_batch
    if large is not None:  # real GPUs: the grader's own timing at a batch where synchronizing matters
        expect(large.value is not None and large.value >= 0.5 * large.reference,
               f"at a batch of {LARGE_BATCH}, time_forward() measured {large.value} s, less than half of the "
               f"{large.reference:.6f} s the grader measured with both GPUs synchronized")
