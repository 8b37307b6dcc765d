"""`python -m grader.classroom RESULTS`: hand a grading run's Classroom results to GitHub
Classroom's grading reporter, from inside the workflow's grading step.

For each rubric item it appends `<RUNNER>_RESULTS=<base64>` to $GITHUB_ENV (the reporter reads
one such variable per runner), writes `runners=<id,id,...>` to $GITHUB_OUTPUT (the reporter's
`runners` input) and the grade table to $GITHUB_STEP_SUMMARY (shown on the run's page). When
RESULTS is missing or unreadable (the grader crashed, or never ran), it hands the reporter one
runner, `grader`, whose error says why, so the run still ends with a Points line and a reason.
"""
import argparse
import base64
import json
import os
import pathlib
import sys

from grader import ROOT, rubric

FALLBACK = "grader"


def results(path):
    """({runner: result}, summary) from the grading run's --classroom file, or the one error
    runner that says why there is none."""
    try:
        data = json.loads(pathlib.Path(path).read_text())
        runners, text = data["runners"], data["summary"]
        if not isinstance(runners, dict) or not runners or not isinstance(text, str):
            raise ValueError("it holds no runner")
        return runners, text
    except (OSError, ValueError, KeyError, TypeError) as error:
        why = f"the grader wrote no result ({getattr(error, 'strerror', None) or error}): see the grading step's log"
    maximum = rubric.load(ROOT / "rubric.yaml").max_score
    test = {"name": "the grader ran", "status": "error", "score": 0, "message": why, "line_no": 0, "test_code": ""}
    return {FALLBACK: {"version": 1, "status": "error", "max_score": maximum, "tests": [test]}}, f"### {why}\n"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m grader.classroom", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("results", type=pathlib.Path, help="what `pytest grader/ --classroom RESULTS` wrote")
    args = parser.parse_args(argv)
    runners, text = results(args.results)
    encoded = {runner: base64.b64encode(json.dumps(result).encode()).decode() for runner, result in runners.items()}
    written = {"GITHUB_ENV": "".join(f"{runner.upper()}_RESULTS={value}\n" for runner, value in encoded.items()),
               "GITHUB_OUTPUT": f"runners={','.join(runners)}\n", "GITHUB_STEP_SUMMARY": text}
    for variable, content in written.items():
        target = os.environ.get(variable)
        if target:
            with open(target, "a", encoding="utf-8") as handle:
                handle.write(content)
        else:
            sys.stdout.write(content if variable == "GITHUB_STEP_SUMMARY" else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
