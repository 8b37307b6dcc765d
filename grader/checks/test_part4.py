"""Part 4: timing a forward pass whose work runs asynchronously on two GPUs."""
import math

from grader.checks import Timing, at_line, expect, fail, rubric

HINT = "handout Part 4"


@rubric("part4.clock_after_sync")
def test_clock_after_sync(probe):
    timing = Timing(probe("time_forward")["events"], "time_forward()")
    end = timing.end()
    before_end = [i for i in timing.syncs if i < end]
    expect(before_end,
           f"the end clock{at_line(timing.events[end])} is read with no torch.cuda.synchronize() between the "
           "forward and it: CUDA calls return before the GPUs finish, so the clock stops too early "
           f"({HINT}: synchronize, then read the clock)")


@rubric("part4.sync_covers_output_gpu")
def test_sync_covers_output_gpu(probe):
    timing = Timing(probe("time_forward")["events"], "time_forward()")
    waited = [timing.events[i].device for i in timing.syncs]
    expect(waited, "nothing synchronizes after the forward pass, so nothing waits for cuda:1, "
                   f"which computes the output ({HINT})")
    expect("cuda:1" in waited,
           f"after the forward the code waits only for {', '.join(sorted(set(waited)))}; the output is computed "
           "on cuda:1, and torch.cuda.synchronize() without a device waits for the current GPU (cuda:0) only: "
           "use torch.cuda.synchronize(device1)")


@rubric("part4.seconds_plausible")
def test_seconds_plausible(probe):
    facts = probe("time_forward")
    timing, value = Timing(facts["events"], "time_forward()"), facts["value"]
    if isinstance(value, dict):
        fail(f"time_forward() returned {value['not_a_number']}; expected the seconds as a float")
    measured = [timing.events[e].seconds - timing.events[s].seconds
                for s in timing.starts for e in timing.ends if timing.events[e].kind == "clock"]
    measured += [e.value / 1000 for e in timing.events if e.name == "elapsed_time"]
    expect(any(math.isclose(value, m, rel_tol=1e-6, abs_tol=1e-9) for m in measured),
           f"time_forward() returned {value!r}, which is not the difference of the clock readings "
           f"around the forward ({', '.join(f'{m:.6g}' for m in measured) or 'none were read around it'}): "
           f"return end - start, in seconds ({HINT})")
    large = facts.get("large_batch")
    if large is not None:  # real GPUs: an independent timing at a batch where synchronizing matters
        expect(not isinstance(large["value"], dict) and large["value"] >= 0.5 * large["reference"],
               f"at a batch of 8192, time_forward() measured {large['value']} s, less than half of the "
               f"{large['reference']:.6f} s the grader measured with both GPUs synchronized")
