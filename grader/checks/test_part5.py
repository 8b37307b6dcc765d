"""Part 5: seeing the idle GPU, in profile_stages' own figures. A figure counts as measured only
when the trace shows where it came from: the elapsed time of two CUDA events recorded on the
docstring's GPU around the right work, or (wall_ms) a clock difference around the forward; the
memory figures, what torch.cuda.memory_allocated answered. No point rests on a figure unmeasured."""
import math

from grader.checks import Timing, expect, fail, gpu_ops, rubric, trace

HINT = "Part 5: see profile_stages in starter/model.py"


def _runs(probe):
    runs = probe("profile").runs
    for run in runs:
        if run.figures is None:
            fail(f"profile_stages(model, x) for a batch of {run.batch} returned {run.problem} "
                 f"({HINT})")
    return runs


def _stage_sources(timing):
    """{figure: [ms of each event pair on the right GPU around the right work]}: layer1 (an op that
    read its weight) on cuda:0, the activation's copy and layer2 on cuda:1, each ordered before the
    end event, the ms as the runtime recorded the events."""
    flow, events = timing.flow, timing.events
    work = {"stage0_ms": ("cuda:0", flow.uses("w1")), "transfer_ms": ("cuda:1", flow.activation_copies()),
            "stage1_ms": ("cuda:1", flow.uses("w2"))}
    work = {key: (gpu, timing.by_queue([i for i in done if events[i].device == gpu]))
            for key, (gpu, done) in work.items()}
    sources = {key: [] for key in work}
    for e in events:
        found = timing.interval(e) if e.name == "elapsed_time" else None
        if found is None:
            continue
        start, end, device, ms = found
        for key, (gpu, grouped) in work.items():
            if device == gpu and timing.ordered_within(grouped, start, end):
                sources[key].append(ms)
    return sources


def _wall_measured(timing, wall_ms):
    """Whether wall_ms is measured: a clock difference from before the forward to after a wait for
    cuda:1, or the elapsed time of events around the whole forward on cuda:1."""
    bracketed = [m * 1000 for e in timing.events if e.name == "elapsed_time" for m in [timing.bracketed(e)]
                 if m is not None]
    return timing.measures(wall_ms / 1000, wait_for="cuda:1") or _among(wall_ms, bracketed)


def _among(value, found):
    return any(math.isclose(value, m, rel_tol=1e-6, abs_tol=1e-9) for m in found)


def _unmeasured(run):
    """The figures of one run that are not what its code measured where it should have."""
    timing, f = Timing(run.events, "profile_stages()"), run.figures
    unmeasured = [key for key, found in _stage_sources(timing).items() if not _among(getattr(f, key), found)]
    return unmeasured + ([] if _wall_measured(timing, f.wall_ms) else ["wall_ms"])


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
    """Judged on measured figures only: figures made up agree with anything."""
    for run in _runs(probe):
        f, batch = run.figures, run.batch
        expect(gpu_ops(trace(run.events).events),
               f"profile_stages() ran no forward pass on the GPUs at a batch of {batch}, so none of its figures is "
               f"measured and their consistency cannot be judged ({HINT})")
        unmeasured = _unmeasured(run)
        expect(not unmeasured,
               f"at a batch of {batch}, {', '.join(unmeasured)} {'is' if len(unmeasured) == 1 else 'are'} not "
               f"measured (part5.figures_measured says where), so the figures' consistency cannot be judged ({HINT})")
        expect(f.wall_ms > 0, f"at a batch of {batch} wall_ms is {f.wall_ms:g}: a forward takes some time ({HINT})")
        slack = 1.05 * f.wall_ms + 0.05
        expect(f.stage0_ms + f.stage1_ms <= slack and f.transfer_ms <= slack,
               f"at a batch of {batch} the stages ({f.stage0_ms:.3f} + {f.stage1_ms:.3f} ms) or the transfer "
               f"({f.transfer_ms:.3f} ms) last longer than the whole forward ({f.wall_ms:.3f} ms)")
        implied = 1 - (f.stage0_ms + f.stage1_ms) / (2 * f.wall_ms)
        expect(abs(f.idle_fraction - implied) <= 0.02,
               f"at a batch of {batch} idle_fraction is {f.idle_fraction:.3f}, but your own figures give "
               f"1 - (stage0 + stage1) / (2 x wall) = {implied:.3f}")
        expect(abs(f.idle_fraction - run.own_idle) <= 0.15,
               f"at a batch of {batch} idle_fraction is {f.idle_fraction:.2f}; the grader measured "
               f"{run.own_idle:.2f} for the same stages ({HINT})")


@rubric("part5.memory_split")
def test_memory_split(probe):
    """Each GPU's bytes must be what torch.cuda.memory_allocated answered for it during the call."""
    needed = probe("profile").param_bytes
    run = _runs(probe)[-1]
    memory = run.figures.memory_bytes
    answered = {(e.device, e.value) for e in trace(run.events).of("memory")}
    unread = [f"{d}: {memory[d]} bytes" for d in needed if (d, memory[d]) not in answered]
    expect(not unread, f"memory_bytes reports {'; '.join(unread)}, which no torch.cuda.memory_allocated(device) "
                       f"call answered for that GPU during profile_stages: report what it answers ({HINT})")
    short = [f"{d} reports {memory[d]} bytes, less than the {needed[d]} bytes of its own layer's weights"
             for d in needed if memory[d] < needed[d]]
    expect(not short, "; ".join(short) + ": report torch.cuda.memory_allocated(device) for each GPU")
