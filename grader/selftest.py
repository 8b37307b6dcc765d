"""`python -m grader.selftest`: check the grader on this machine before it grades anyone.

What it checks depends on the GPUs it finds:
  every machine  the reference solution scores full marks in virtual mode, and each built-in
                 faulty variant of it loses exactly its rubric items;
  two or more    the same in real mode (the authoritative one); the large-batch timing reference
                 with and without synchronize, far apart; SimpleMPModel's profiled training step
                 taking turns on the two GPUs;
  exactly one    a rehearsal of what real mode does that one GPU can show: the recorder, CUDA
                 events read after a synchronize, the large-batch reference with both stages on
                 cuda:0, the profiler's kernel intervals, and probes forked in the sandbox using
                 CUDA (the solution moved onto cuda:0 alone).
It prints one table (check, expected, got) and exits 1 on any mismatch.
"""
import argparse
import dataclasses
import json
import pathlib
import statistics
import subprocess
import sys
import tempfile

from grader import ROOT
from grader import rubric as rubrics
from grader.contract import LARGE_BATCH

SOLUTION, ANSWERS = ROOT / "solutions" / "model.py", ROOT / "solutions" / "answers.yaml"
SEPARATION = 2.0  # the least ratio of a synchronized large-batch forward to an unsynchronized one
GRADE_SECONDS = 600  # one `pytest grader/` run, at most

TIMED = """    start = time.perf_counter()
    model(x)
    torch.cuda.synchronize(device1)
    return time.perf_counter() - start
"""


@dataclasses.dataclass(frozen=True)
class Fault:
    """A mistake the grader must catch: an edit of the solution, and the items it must cost."""
    edits: tuple  # (old, new) pairs; each old text occurs in the solution exactly once
    loses: tuple
    reason: str = ""  # a phrase the lost items' messages contain, where it matters


PART5 = ("part5.figures_measured", "part5.figures_consistent", "part5.memory_split")
FAULTS = {
    "no_sync": Fault(((TIMED, TIMED.replace("    torch.cuda.synchronize(device1)\n", "")),),
                     ("part4.clock_after_sync", "part4.sync_covers_output_gpu")),
    "bare_sync": Fault(((TIMED, TIMED.replace("synchronize(device1)", "synchronize()")),),
                       ("part4.sync_covers_output_gpu",), "waits for the current GPU (cuda:0) only"),
    "all_on_cuda0": Fault((('device1 = torch.device("cuda:1")', 'device1 = torch.device("cuda:0")'),),
                          ("part1.layer2_on_cuda1", "part1.output_on_cuda1", "part1.single_transfer",
                           "part3.prints_devices", "part4.sync_covers_output_gpu", *PART5, "part6.pipelined")),
    "target_on_cpu": Fault((("    y = y.to(device1)\n", ""),), ("part2.target_on_last_gpu",)),
    "made_up_time": Fault((("    return time.perf_counter() - start\n",
                            "    elapsed = time.perf_counter() - start  # measured, then ignored\n"
                            "    return 0.00013\n"),), ("part4.seconds_plausible",)),
}


@dataclasses.dataclass(frozen=True)
class Row:
    check: str
    expected: str
    got: str
    ok: bool


def variant(edits, solution=SOLUTION):
    """The solution's text with `edits` applied; ValueError when one no longer applies."""
    text = solution.read_text()
    for old, new in edits:
        if text.count(old) != 1:
            raise ValueError(f"the solution no longer contains {old!r} exactly once")
        text = text.replace(old, new)
    return text


def graded(source, mode, folder):
    """The grade of `source` by `pytest grader/` in `mode`, as its --grade-json dict."""
    path = pathlib.Path(folder) / "model.py"
    path.write_text(source)
    out = pathlib.Path(folder) / "grade.json"
    out.unlink(missing_ok=True)
    command = [sys.executable, "-m", "pytest", "grader/", "-q", "-p", "no:cacheprovider", "--submission", str(path),
               "--answers", str(ANSWERS), "--grader-mode", mode, "--grade-json", str(out)]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=GRADE_SECONDS)
    if not out.exists():
        raise RuntimeError(f"`pytest grader/` wrote no grade (exit {run.returncode}): {run.stdout[-400:]}")
    return json.loads(out.read_text())


def grading_rows(mode):
    """The solution and each faulty variant graded in `mode`: full marks, then exactly the items
    each fault must cost (with its reason, where it names one)."""
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        cases = {"solution": Fault((), ())} | FAULTS
        for name, fault in cases.items():
            grade = graded(variant(fault.edits), mode, folder)
            lost = [c for c in grade["checks"] if c["status"] in ("failed", "error")]
            got, wanted = {c["id"] for c in lost}, set(fault.loses)
            unexplained = [c["id"] for c in lost if fault.reason not in c["message"]]
            ok = got == wanted and not unexplained and grade["mode"] == mode
            differences = [f"also lost {', '.join(sorted(got - wanted))}" if got - wanted else "",
                           f"kept {', '.join(sorted(wanted - got))}" if wanted - got else "",
                           f"without '{fault.reason}' in {', '.join(unexplained)}" if unexplained else ""]
            rows.append(Row(f"{mode}: grade {name}", _items(fault.loses),
                            f"{grade['score']:g} / {grade['max_score']:g}; "
                            + ("; ".join(filter(None, differences)) or "as expected"), ok))
    return rows


def _items(ids):
    if not ids:
        return "full marks"
    return f"loses {ids[0]}" + (f" and {len(ids) - 1} more" if len(ids) > 1 else "")


def separation_row(devices):
    """The grader's large-batch reference forward, timed with and without synchronize, on the
    layers placed on `devices` (cuda:0 and cuda:1, or cuda:0 twice on one GPU)."""
    import torch

    from grader.runner.own_math import seconds as reference_seconds

    params = {"w1": torch.randn(2000, 1000, device=devices[0]), "b1": torch.randn(2000, device=devices[0]),
              "w2": torch.randn(1000, 2000, device=devices[1]), "b2": torch.randn(1000, device=devices[1])}
    x = torch.randn(LARGE_BATCH, 1000, device=devices[0])
    reference_seconds(params, x)  # warm-up: the first kernels load their libraries
    waited = statistics.median(reference_seconds(params, x) for _ in range(5))
    unwaited = statistics.median(reference_seconds(params, x, wait=False) for _ in range(5))
    ratio = waited / unwaited if unwaited > 0 else float("inf")
    return Row(f"large-batch reference on {' and '.join(devices)}", f"synchronized >= {SEPARATION:g}x unsynchronized",
               f"{waited * 1e6:.0f} us vs {unwaited * 1e6:.0f} us ({ratio:.1f}x)", ratio >= SEPARATION)


def recorder_rows():
    """One GPU: the real-mode recorder sees a move, an op, a device's and a stream's synchronize and
    events on cuda:0, and reads an event's time only after waiting for it."""
    import torch

    from grader.devices import real_gpus
    from grader.trace import Trace

    trace = Trace()
    layer = torch.nn.Linear(1000, 2000).to("cuda:0")
    with real_gpus(trace):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        x = torch.randn(256, 1000).to("cuda:0")
        start.record()
        layer(x)
        end.record()
        torch.cuda.synchronize(0)
        torch.cuda.current_stream(0).synchronize()
        ms = start.elapsed_time(end)
    seen = [(e.kind, e.name, e.device) for e in trace.events]
    wanted = [("transfer", "to", "cuda:0"), ("op", "linear", "cuda:0"), ("sync", "synchronize", "cuda:0"),
              ("sync", "stream.synchronize", "cuda:0"), ("cuda_event", "record", "cuda:0"),
              ("cuda_event", "elapsed_time", "cuda:0")]
    missing = [w for w in wanted if w not in seen]
    return [Row("real-mode recorder on cuda:0", "move, op, synchronize, events recorded",
                "all recorded" if not missing else f"missing {missing}", not missing),
            Row("CUDA events read after synchronize", "elapsed_time > 0 ms", f"{ms:.3f} ms", ms > 0)]


def profiler_row():
    """One GPU: torch.profiler's kernel intervals of the grader's forward, as the timeline reads them."""
    import torch

    from grader.runner.profiler import intervals

    layer = torch.nn.Linear(1000, 2000).to("cuda:0")
    x = torch.randn(512, 1000, device="cuda:0")
    layer(x)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as profiler:
        torch.relu(layer(x))
        torch.cuda.synchronize(0)
    kernels = [i for i in intervals(profiler) if i.gpu == 0 and i.end > i.start]
    return Row("profiler kernel intervals on cuda:0", "at least 2 kernels", f"{len(kernels)} kernels",
               len(kernels) >= 2)


def forked_row(lab):
    """One GPU: the probes, forked in the sandbox, run the solution moved onto cuda:0 alone in real
    mode (its figures are not judged: one GPU cannot hold the lab's split)."""
    from grader.sandbox import runner

    source = variant(FAULTS["all_on_cuda0"].edits)
    outcomes = runner.run_once(lab, source, "real", ["construct", "forward", "train", "time_forward"])
    failures = {name: o.failure for name, o in outcomes.items() if o.failure}
    if failures:
        return Row("probes forked with CUDA (sandbox, real mode)", "4 probes run on cuda:0", f"failed: {failures}",
                   False)
    output, timed = outcomes["forward"].facts.output, outcomes["time_forward"].facts
    ok = output is not None and output.device == "cuda:0" and (timed.value or 0) > 0 and timed.large_batch is not None
    got = (f"output on {output and output.device}, time_forward {timed.value} s, large-batch reference "
           f"{timed.large_batch and timed.large_batch.reference} s")
    return Row("probes forked with CUDA (sandbox, real mode)", "4 probes run on cuda:0", got, ok)


def turns_row(lab):
    """Two GPUs: SimpleMPModel's profiled training step, per GPU, takes turns: the GPUs' forward
    and backward kernels barely overlap."""
    from grader.sandbox import runner
    from grader.timeline import from_facts

    outcome = runner.run_once(lab, SOLUTION.read_text(), "real", ["timeline"])["timeline"]
    if outcome.failure:
        return Row("SimpleMPModel's profiled step", "the GPUs take turns", f"failed: {outcome.failure}", False)
    if outcome.facts.simple.step is None:
        return Row("SimpleMPModel's profiled step", "the GPUs take turns", outcome.facts.simple.error, False)
    timeline = from_facts(outcome.facts.simple.step, "SimpleMPModel")
    busy = min(timeline.busy(0), timeline.busy(1))
    share = timeline.overlap / busy if busy else 1.0
    return Row("SimpleMPModel's profiled step", "the GPUs take turns (overlap < 10% of busy time)",
               f"overlap {share:.0%}, idle {timeline.idle_fraction:.0%}", busy > 0 and share < 0.1)


def plan(gpus, lab):
    """The checks for a machine with `gpus` CUDA GPUs, in the order they run: (title, rows thunk)."""
    steps = [("virtual mode", lambda: grading_rows("virtual"))]
    if gpus >= 2:
        steps += [("real mode", lambda: grading_rows("real")),
                  ("timing reference", lambda: [separation_row(("cuda:0", "cuda:1"))]),
                  ("profiler", lambda: [turns_row(lab)])]
    elif gpus == 1:
        steps += [("sandbox with CUDA", lambda: [forked_row(lab)]),
                  ("recorder", recorder_rows),
                  ("timing reference", lambda: [separation_row(("cuda:0", "cuda:0"))]),
                  ("profiler", lambda: [profiler_row()])]
    return steps


def render(rows):
    widths = [max(len(getattr(r, f)) for r in rows) for f in ("check", "expected")]
    lines = [f"{'':5}{'check':<{widths[0]}}  {'expected':<{widths[1]}}  got"]
    for r in rows:
        lines.append(f"{'ok' if r.ok else 'FAIL':<5}{r.check:<{widths[0]}}  {r.expected:<{widths[1]}}  {r.got}")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m grader.selftest", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rubric", type=pathlib.Path, default=ROOT / "rubric.yaml",
                        help="the rubric.yaml to grade with (default: the project's)")
    args = parser.parse_args(argv)
    if not SOLUTION.is_file() or not ANSWERS.is_file():
        parser.error(f"the selftest grades the reference solution, and {SOLUTION.parent} has none here "
                     "(a student template has no solutions/): run it in the instructor's repository")
    try:
        lab = rubrics.load(args.rubric)
    except rubrics.RubricError as error:
        parser.error(f"invalid rubric: {error}")
    import torch

    gpus = torch.cuda.device_count()
    print(f"grader selftest: torch {torch.__version__}, {gpus} CUDA GPU(s) visible", flush=True)
    rows = []
    for title, step in plan(gpus, lab):
        print(f"  {title} ...", flush=True)
        try:
            rows += step()
        except Exception as error:  # a selftest reports what broke, and goes on to the next check
            rows.append(Row(title, "runs", f"{type(error).__name__}: {error}", False))
    print("\n".join(render(rows)))
    failed = sum(not r.ok for r in rows)
    print(f"{len(rows) - failed} of {len(rows)} checks as expected" + (f"; {failed} FAILED" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
