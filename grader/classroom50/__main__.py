"""`python -m grader.classroom50 [--checkout DIR]`: grade a Classroom 50 submission, DIR/starter/model.py
and DIR/starter/answers.yaml, with this copy of the grader (never the checkout's; in real mode
where two GPUs are visible, else virtual), and write what Classroom 50's runner publishes:
DIR/result.json (schema classroom50/result/v1), DIR/release-body.md,
DIR/classroom50-release-assets/timeline.svg, and `status=` and `summary=` lines in $GITHUB_OUTPUT.

Scores are whole numbers, in half points, a bonus counted in both totals (grader.report.classroom50).
The status is success exactly when every required point graded here is earned, else failure. With
no grade (--not-graded REASON, or the grader wrote none) the result is still valid (0 / 0, one
failed test) and the body says why; the status is then error, so Classroom 50 publishes no Release
and a grade already collected stays. The runner's variables CLASSROOM, ASSIGNMENT, SUBMISSION_TAG,
COMMIT_URL and RELEASE_URL (REVIEW_URL if set) fill the result's identity.
"""
import argparse
import datetime
import json
import os
import pathlib
import shutil
import subprocess
import sys
import traceback

from grader import ROOT, hosted, report

SCHEMA = "classroom50/result/v1"
MODEL = pathlib.Path("starter/model.py")  # its answers.yaml beside it
ASSETS = "classroom50-release-assets"  # the folder the assignment's release_assets name files in
IDENTITY = ("CLASSROOM", "ASSIGNMENT", "SUBMISSION_TAG", "COMMIT_URL", "RELEASE_URL")
TIMELINE_SECONDS = 300
PREVIEW = ("This grade is a preview: your TA grades `starter/model.py` and `starter/answers.yaml` again with the "
           "course's own copy of the grader, the questions included.")


def result(scores):
    """result.json: the submission's identity, from the runner's variables (the runner stamps the
    owner, the assignment type and the times itself), and `scores`."""
    env = os.environ
    return {"schema": SCHEMA, "classroom": env["CLASSROOM"], "assignment": env["ASSIGNMENT"],
            "submission": env["SUBMISSION_TAG"], "commit": env["COMMIT_URL"], "release": env["RELEASE_URL"],
            "review": env.get("REVIEW_URL") or env["COMMIT_URL"],
            "datetime": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), **scores}


def graded(checkout):
    """(scores, body, status, summary) of the checkout's submission; None when the grader wrote no
    grade. The table, whole, goes to the log."""
    from grader import rubric

    with hosted.private_copy(checkout, MODEL) as work:
        # auto: real mode on a self-hosted runner with two GPUs. Unisolated where the runner has no
        # isolation: student code runs in this job anyway, and the TA's batch regrades.
        outcome = hosted.grade(work, "auto", unisolated=True)
        if outcome is None:
            return None
        notes = [f"Status: {outcome['status']}: {outcome['reason']}"] if outcome["reason"] else []
        notes += [timeline(work, checkout / ASSETS), PREVIEW]
    grade = outcome["grade"]
    print("\n".join(report.table(grade)))
    scores = report.classroom50(grade, rubric.load(ROOT / "rubric.yaml"))
    status = "success" if report.complete(grade) else "failure"
    return scores, report.classroom50_body(grade, scores, notes), status, report.score_line(grade)


def timeline(work, assets):
    """Draw the copied submission's timeline into ASSETS/timeline.svg; what the body says of it."""
    drawn = work / "timeline"
    try:
        done = subprocess.run([sys.executable, "-m", "grader.timeline", "--submission", str(hosted.model_copy(work)),
                               "--out", str(drawn), "--grader-mode", "auto"], cwd=ROOT, capture_output=True,
                              text=True, timeout=TIMELINE_SECONDS, check=False)
        why = (done.stderr.strip().splitlines() or ["it drew nothing"])[-1] if done.returncode else None
    except subprocess.TimeoutExpired:
        why = f"it took over {TIMELINE_SECONDS} s"
    if why is not None or not (drawn / "timeline.svg").is_file():
        return f"No timeline of a training step: {hosted.without_paths(why or 'it drew nothing', work)}"
    _replace(assets, None)
    shutil.copyfile(drawn / "timeline.svg", assets / "timeline.svg")
    return "When each GPU works and when it waits, in one training step: `timeline.svg`, among this Release's files."


def not_graded(reason):
    """(scores, body, status, summary) that say why there is no grade."""
    scores = {"score": 0, "max-score": 0,
              "tests": [{"test-name": "the grader ran", "passed": False, "score": 0, "max-score": 0}]}
    return scores, f"### Not graded here: {reason}\n\n{PREVIEW}\n", "error", f"not graded: {reason}"


def _replace(path, text):
    """Put a new file (`text`) or an empty folder (None) at `path`, whatever the checkout had there:
    never written through a link the student committed."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    if text is None:
        path.mkdir()
    else:
        path.write_text(text)


def write_outputs(status, summary):
    """`status=` (the last one written wins) and `summary=` (a commit status's description: one line,
    capped) in $GITHUB_OUTPUT, or on stdout without it."""
    lines = f"status={status}\nsummary={' '.join(summary.split())[:report.SUMMARY_CAP]}\n"
    target = os.environ.get("GITHUB_OUTPUT")
    if not target:
        sys.stdout.write(lines)
        return
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m grader.classroom50", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--checkout", type=pathlib.Path, default=pathlib.Path.cwd(), metavar="DIR",
                        help="the student's checkout (default: the current folder, where the runner starts "
                             "autograder.py)")
    parser.add_argument("--not-graded", metavar="REASON",
                        help="grade nothing: write a result that says why (autograder.py, when its install failed)")
    args = parser.parse_args(argv)
    missing = [name for name in IDENTITY if not os.environ.get(name)]
    if missing:
        parser.error(f"{', '.join(missing)} not set: Classroom 50's runner sets them when it runs autograder.py")
    if not args.checkout.is_dir():
        parser.error(f"{args.checkout} is not a folder")
    outputs, reason = None, args.not_graded
    if reason is None:
        try:
            outputs = graded(args.checkout)
        except Exception as error:  # whatever fails, the runner gets a valid result that says why
            traceback.print_exc()
            reason = f"the grader failed ({type(error).__name__}: {error}); see the grading step's log"
    scores, body, status, summary = outputs or not_graded(reason or "the grader wrote no grade; see the grading "
                                                                    "step's log")
    _replace(args.checkout / "result.json", json.dumps(result(scores), indent=2) + "\n")
    _replace(args.checkout / "release-body.md", body)
    write_outputs(status, summary)
    print(f"classroom50: {status}, {scores['score']} / {scores['max-score']} (half points): {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
