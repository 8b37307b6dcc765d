"""Part 5: seeing the idle GPU, in profile_stages' own figures."""
from grader.checks import Timing, at_line, expect, fail, rubric

HINT = "Part 5: see profile_stages in starter/model.py"


def _runs(probe):
    runs = probe("profile")["runs"]
    for run in runs:
        if "problem" in run["figures"]:
            fail(f"profile_stages(model, x) for a batch of {run['batch']} returned {run['figures']['problem']} "
                 f"({HINT})")
    return runs


@rubric("part5.figures_measured")
def test_figures_measured(probe):
    small, large = _runs(probe)
    stuck = [k for k in ("stage0_ms", "stage1_ms", "wall_ms")
             if not large["figures"][k] > 1.5 * small["figures"][k] > 0]
    expect(not stuck,
           f"from a batch of {small['batch']} to one of {large['batch']} (8 times the work) "
           + ", ".join(f"{k} went from {small['figures'][k]:.4g} to {large['figures'][k]:.4g}" for k in stuck)
           + f": measure each figure, do not return constants ({HINT})")


@rubric("part5.figures_consistent")
def test_figures_consistent(probe):
    for run in _runs(probe):
        f, batch = run["figures"], run["batch"]
        slack = 1.05 * f["wall_ms"] + 0.05
        expect(f["stage0_ms"] + f["stage1_ms"] <= slack and f["transfer_ms"] <= slack,
               f"at a batch of {batch} the stages ({f['stage0_ms']:.3f} + {f['stage1_ms']:.3f} ms) or the transfer "
               f"({f['transfer_ms']:.3f} ms) last longer than the whole forward ({f['wall_ms']:.3f} ms)")
        implied = 1 - (f["stage0_ms"] + f["stage1_ms"]) / (2 * f["wall_ms"])
        expect(abs(f["idle_fraction"] - implied) <= 0.02,
               f"at a batch of {batch} idle_fraction is {f['idle_fraction']:.3f}, but your own figures give "
               f"1 - (stage0 + stage1) / (2 x wall) = {implied:.3f}")
        expect(abs(f["idle_fraction"] - run["own_idle"]) <= 0.15,
               f"at a batch of {batch} idle_fraction is {f['idle_fraction']:.2f}; the grader measured "
               f"{run['own_idle']:.2f} for the same stages ({HINT})")
        if not any(e["kind"] == "op" for e in run["events"]):
            continue  # nothing was computed, so nothing measured: figures_measured's finding
        timing = Timing(run["events"], "profile_stages()")
        clocks = [i for i in timing.ends if timing.events[i].kind == "clock"]
        if clocks:
            waited = [i for i in timing.syncs if i < clocks[-1] and timing.events[i].device == "cuda:1"]
            expect(waited, f"the clock that ends the forward{at_line(timing.events[clocks[-1]])} is read before "
                           "the host waited for cuda:1, which finishes last: synchronize both GPUs first")


@rubric("part5.memory_split")
def test_memory_split(probe):
    needed = probe("profile")["param_bytes"]
    memory = _runs(probe)[-1]["figures"]["memory_bytes"]
    short = [f"{d} reports {memory[d]} bytes, less than the {needed[d]} bytes of its own layer's weights"
             for d in needed if memory[d] < needed[d]]
    expect(not short, "; ".join(short) + ": report torch.cuda.memory_allocated(device) for each GPU")
