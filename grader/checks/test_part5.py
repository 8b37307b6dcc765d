"""Part 5: seeing the idle GPU, in profile_stages' own figures. A figure counts as measured only
when the trace shows where it came from: the elapsed time of two CUDA events recorded on the
docstring's GPU around the right work, or (wall_ms) a clock difference around the forward."""
import math

from grader.checks import MATRIX_OPS, Timing, expect, fail, gpu_ops, rubric, trace

HINT = "Part 5: see profile_stages in starter/model.py"


def _runs(probe):
    runs = probe("profile").runs
    for run in runs:
        if run.figures is None:
            fail(f"profile_stages(model, x) for a batch of {run.batch} returned {run.problem} "
                 f"({HINT})")
    return runs


def _stage_sources(timing):
    """{figure: [ms of each event pair on the right GPU around the right work]}."""
    events, sources = timing.events, {"stage0_ms": [], "transfer_ms": [], "stage1_ms": []}

    def between(start, end, test):
        return any(test(e) for e in events[start + 1:end])

    for e in events:
        if e.name != "elapsed_time" or not e.ids:
            continue
        (start, device), (end, device_end) = (timing.recorded.get(n, (None, None)) for n in e.ids)
        if start is None or end is None or device != device_end:
            continue
        if device == "cuda:0" and between(start, end, lambda o: o.kind == "op" and o.device == "cuda:0"
                                          and o.name in MATRIX_OPS):
            sources["stage0_ms"].append(e.value)
        if device == "cuda:1" and between(start, end, lambda o: o.kind == "transfer" and o.source == "cuda:0"
                                          and o.device == "cuda:1"):
            sources["transfer_ms"].append(e.value)
        if device == "cuda:1" and between(start, end, lambda o: o.kind == "op" and o.device == "cuda:1"
                                          and o.name in MATRIX_OPS):
            sources["stage1_ms"].append(e.value)
    return sources


def _wall_sources(timing):
    """wall_ms as measured: a clock difference from before the forward to after a wait for cuda:1,
    or the elapsed time of events around the whole forward on cuda:1."""
    events = timing.events
    clocks = [(s, e) for s in timing.starts for e in timing.ends
              if events[s].kind == "clock" and events[e].kind == "clock" and timing.waited_before(e, "cuda:1")]
    walls = [(events[e].seconds - events[s].seconds) * 1000 for s, e in clocks]
    return walls + [e.value for e in events if e.name == "elapsed_time" and timing.bracketing(e)]


def _unmeasured(run):
    """The figures of one run that are not what its code measured where it should have."""
    timing, f = Timing(run.events, "profile_stages()"), run.figures
    sources = {**_stage_sources(timing), "wall_ms": _wall_sources(timing)}
    return [key for key, found in sources.items()
            if not any(math.isclose(getattr(f, key), m, rel_tol=1e-6, abs_tol=1e-9) for m in found)]


@rubric("part5.figures_measured")
def test_figures_measured(probe):
    runs = _runs(probe)
    for run in runs:
        unmeasured = _unmeasured(run)
        expect(not unmeasured,
               f"at a batch of {run.batch}, {', '.join(unmeasured)} {'is' if len(unmeasured) == 1 else 'are'} "
               "not what the code measured: stage0_ms must be the elapsed time of two CUDA events recorded on "
               "cuda:0 around layer1, transfer_ms and stage1_ms of events recorded on cuda:1 around the copy and "
               "around layer2, and wall_ms a clock difference around the whole forward, read after waiting for "
               f"cuda:1 ({HINT})")
    small, large = runs
    stuck = [k for k in ("stage0_ms", "stage1_ms", "wall_ms")
             if not getattr(large.figures, k) > 1.5 * getattr(small.figures, k) > 0]
    expect(not stuck,
           f"from a batch of {small.batch} to one of {large.batch} (8 times the work) "
           + ", ".join(f"{k} went from {getattr(small.figures, k):.4g} to {getattr(large.figures, k):.4g}"
                       for k in stuck)
           + f": measure each figure, do not return constants ({HINT})")


@rubric("part5.figures_consistent")
def test_figures_consistent(probe):
    for run in _runs(probe):
        f, batch = run.figures, run.batch
        slack = 1.05 * f.wall_ms + 0.05
        expect(f.stage0_ms + f.stage1_ms <= slack and f.transfer_ms <= slack,
               f"at a batch of {batch} the stages ({f.stage0_ms:.3f} + {f.stage1_ms:.3f} ms) or the transfer "
               f"({f.transfer_ms:.3f} ms) last longer than the whole forward ({f.wall_ms:.3f} ms)")
        implied = 1 - (f.stage0_ms + f.stage1_ms) / (2 * f.wall_ms)
        expect(abs(f.idle_fraction - implied) <= 0.02,
               f"at a batch of {batch} idle_fraction is {f.idle_fraction:.3f}, but your own figures give "
               f"1 - (stage0 + stage1) / (2 x wall) = {implied:.3f}")
        if not gpu_ops(trace(run.events).events) or set(_unmeasured(run)) & {"stage0_ms", "stage1_ms", "wall_ms"}:
            continue  # not measured, or on the wrong GPU or around the wrong work: figures_measured says so, alone
        expect(abs(f.idle_fraction - run.own_idle) <= 0.15,
               f"at a batch of {batch} idle_fraction is {f.idle_fraction:.2f}; the grader measured "
               f"{run.own_idle:.2f} for the same stages ({HINT})")


@rubric("part5.memory_split")
def test_memory_split(probe):
    needed = probe("profile").param_bytes
    memory = _runs(probe)[-1].figures.memory_bytes
    short = [f"{d} reports {memory[d]} bytes, less than the {needed[d]} bytes of its own layer's weights"
             for d in needed if memory[d] < needed[d]]
    expect(not short, "; ".join(short) + ": report torch.cuda.memory_allocated(device) for each GPU")
