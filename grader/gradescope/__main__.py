"""`python -m grader.gradescope [--root /autograder]`: grade the upload Gradescope unpacked into
ROOT/submission and write ROOT/results/results.json, whatever happens.

The upload's model.py may sit at any depth (a "Download ZIP" of the student's repository puts
everything in one top-level folder); answers.yaml is read beside it. Two model.py files is a clear
reason, not a guess. The submission is graded by grader.hosted (a private copy, grader.batch: the
sandbox, the pristine grader), and no message names a folder of the grading machine.
"""
import argparse
import json
import pathlib
import sys
import time

from grader import ROOT, hosted, report

SKIPPED = ("__MACOSX", ".git")  # what archivers and clones add beside a student's files


class Unusable(Exception):
    """The upload holds no single model.py to grade; the message says why, for the student."""


def find_model(upload):
    """The one model.py of the upload (its path relative to `upload`), never through a link."""
    found = []
    for path in sorted(upload.rglob("model.py")):
        relative = path.relative_to(upload)
        if any(part in SKIPPED or part.startswith(".") for part in relative.parts):
            continue
        if any((upload / pathlib.Path(*relative.parts[:n])).is_symlink() for n in range(1, len(relative.parts) + 1)):
            continue
        found.append(relative)
    if not found:
        raise Unusable("the upload has no model.py: upload starter/model.py and starter/answers.yaml")
    if len(found) > 1:
        raise Unusable(f"the upload has {len(found)} files named model.py ({', '.join(map(str, found))}): "
                       "upload only the one to grade, with its answers.yaml")
    return found[0]


def failed(reason, rubric_max):
    return {"score": 0.0, "max_score": rubric_max, "output": f"Not graded: {reason}", "visibility": "visible",
            "tests": []}


def grade(root):
    """Grade ROOT/submission into ROOT/results/results.json; the results, also returned."""
    from grader import rubric

    lab = rubric.load(ROOT / "rubric.yaml")
    upload = root / "submission"
    try:
        model = find_model(upload)
    except Unusable as reason:
        results = failed(str(reason), lab.max_score)
    else:
        started = time.monotonic()
        with hosted.private_copy(upload, model) as work:
            result = hosted.grade(work)
        results = (report.gradescope(result["grade"], time.monotonic() - started) if result
                   else failed("the grader could not grade this upload; please tell your TA", lab.max_score))
    (root / "results").mkdir(parents=True, exist_ok=True)
    (root / "results" / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m grader.gradescope", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--root", type=pathlib.Path, default=pathlib.Path("/autograder"),
                        help="Gradescope's folder: ROOT/submission is read, ROOT/results written "
                             "(default: /autograder)")
    args = parser.parse_args(argv)
    if not (args.root / "submission").is_dir():
        parser.error(f"{args.root / 'submission'} is not a folder: is this Gradescope's layout?")
    results = grade(args.root)
    print(f"{results['score']:g} / {results['max_score']:g}: {args.root / 'results' / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
