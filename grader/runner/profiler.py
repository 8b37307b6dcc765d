"""What torch.profiler sees of a training step on real GPUs: each kernel or copy, per GPU, as the
timeline's intervals. Imported only in real mode (the profiler is a large import)."""
import torch

from grader.facts import Interval


def profiled(run):
    """(what `run()` returned, the Intervals of its CUDA work on cuda:0 and cuda:1)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as profiler:
        result = run()
    return result, intervals(profiler)


def intervals(profiler):
    found = []
    for event in profiler.events():
        if event.device_type.name == "CUDA" and event.device_index in (0, 1):
            phase = "transfer" if "memcpy" in event.name.lower() else f"stage {event.device_index}"
            found.append(Interval(event.device_index, event.time_range.start / 1e6, event.time_range.end / 1e6,
                                  phase, event.name))
    return found
