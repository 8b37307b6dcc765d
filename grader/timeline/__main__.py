"""`python -m grader.timeline [--submission PATH] [--out timeline.svg]`: one training step of the
submission's SimpleMPModel and PipelinedMPModel, per GPU, as an SVG, a Chrome trace beside it
(timeline.json, for Perfetto) and text strips."""
import argparse
import json
import pathlib

from grader import probes, rubric, sandbox
from grader.devices import choose_mode
from grader.timeline import PHASES, chrome_trace, describe, from_facts, strip, svg

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m grader.timeline", description=__doc__.splitlines()[0])
    parser.add_argument("--submission", type=pathlib.Path, default=ROOT / "starter" / "model.py")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("timeline.svg"))
    parser.add_argument("--grader-mode", choices=("auto", "real", "virtual"), default="auto")
    args = parser.parse_args(argv)
    try:
        mode, _ = choose_mode(args.grader_mode)
    except ValueError as error:
        parser.error(str(error))
    outcome = sandbox.Child("pipeline", str(args.submission.resolve()), mode, rubric.load(ROOT / "rubric.yaml")).outcome()
    if isinstance(outcome, sandbox.ProbeFailed):
        raise SystemExit(f"cannot draw the timeline: {outcome}")
    if "error" in outcome["simple"]:
        raise SystemExit(f"cannot draw SimpleMPModel's timeline: {outcome['simple']['error']}")
    timelines = [from_facts(outcome["simple"], "SimpleMPModel"),
                 from_facts(outcome["pipelined"], f"PipelinedMPModel({probes.SPLIT})")]
    print(f"one training step at a batch of {probes.PIPELINE_BATCH} ({'|'.join(f'{c} {p}' for p, c in PHASES.items())},"
          " . idle)")
    for t in timelines:
        print(describe(t))
        print("\n".join(strip(t)))
    args.out.write_text(svg(timelines))
    trace = args.out.with_suffix(".json")
    trace.write_text(json.dumps(chrome_trace(timelines)))
    print(f"drawn in {args.out}; {trace} opens in Perfetto (ui.perfetto.dev)")


if __name__ == "__main__":
    main()
