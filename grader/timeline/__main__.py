"""`python -m grader.timeline`: see when each GPU works and when it waits, in one training step of
your SimpleMPModel and, once you have written it, your PipelinedMPModel (the bonus).

It prints a text strip per GPU and writes, into the --out folder, timeline.svg (open it in a
browser) and timeline.json (a Chrome trace: open it in ui.perfetto.dev to zoom in). On virtual
GPUs the times are modelled from what your code ran (see grader/timeline/__init__.py); on two real
GPUs they are what torch.profiler measured.
"""
import argparse
import json
import pathlib

from grader import ROOT, rubric
from grader.contract import MODE_CHOICES, MODE_HELP, PIPELINE_BATCH, SPLIT
from grader.sandbox import files, runner
from grader.timeline import PHASES, chrome_trace, describe, from_facts, strip, svg

SUBMISSION_HELP = "the model.py to draw (default: starter/model.py)"
OUT_HELP = "the folder for timeline.svg and timeline.json (default: build/timeline, which git ignores)"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m grader.timeline", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--submission", type=pathlib.Path, default=ROOT / "starter" / "model.py", help=SUBMISSION_HELP)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "build" / "timeline", metavar="DIR", help=OUT_HELP)
    parser.add_argument("--grader-mode", choices=MODE_CHOICES, default="auto", help=MODE_HELP)
    args = parser.parse_args(argv)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        parser.error(f"cannot write into {args.out}: {error.strerror}")
    try:
        facts = _timeline_facts(args.submission, args.grader_mode)
    except ValueError as error:
        parser.error(str(error))
    if facts.simple.step is None:
        raise SystemExit(f"cannot draw SimpleMPModel's timeline: {facts.simple.error}")
    timelines = [from_facts(facts.simple.step, "SimpleMPModel")]
    if facts.pipelined.step is not None:
        timelines.append(from_facts(facts.pipelined.step, f"PipelinedMPModel({SPLIT})"))
    print(f"one training step at a batch of {PIPELINE_BATCH} ({', '.join(f'{c} {p}' for p, c in PHASES.items())}, "
          ". idle)")
    for t in timelines:
        print(describe(t))
        print("\n".join(strip(t)))
    if facts.pipelined.step is None:
        reason = "not written yet" if facts.pipelined.unfinished else facts.pipelined.error
        print(f"PipelinedMPModel (the bonus) is not drawn: {reason}")
    picture, trace = args.out / "timeline.svg", args.out / "timeline.json"
    picture.write_text(svg(timelines))
    trace.write_text(json.dumps(chrome_trace(timelines)))
    print(f"drawn in {picture}; {trace} opens in Perfetto (ui.perfetto.dev)")


def _timeline_facts(submission, mode):
    """The timeline probe's facts for `submission`, run in the sandbox as a grading run would."""
    lab = rubric.load(ROOT / "rubric.yaml")
    source, problem = files.submission(submission)
    if problem is not None:
        raise SystemExit(f"cannot draw the timeline of {submission}: {problem}")
    outcome = runner.run_once(lab, source, mode, ["timeline"])["timeline"]
    if outcome.failure:
        raise SystemExit(f"cannot draw the timeline: {outcome.failure}")
    return outcome.facts


if __name__ == "__main__":
    main()
