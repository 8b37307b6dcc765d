"""Every command line of the grader: a --help that reads whole, and a bad path answered in one
line (exit status 1 or 2), never a traceback."""

import pytest
from corpus import ROOT
from helpers import python_m

# module -> words its --help must show (its options and what it is for)
HELP = {
    "grader.batch": ["--out", "--grader-mode", "--isolation", "--no-isolation", "--timeout", "--gradescope",
                     "--rubric", "--force", "--only NAME", "--shard K/N", "--roster", "merge --help",
                     "export --help"],
    "grader.release": ["the folder to write the template into", "--classroom50 BUNDLE"],
    "grader.timeline": ["--submission", "--out DIR", "build/timeline", "what torch.profiler measured."],
    "grader.selftest": ["--rubric", "two or more", "exactly one"],
    "grader.virtual": ["the Python file to run", "its own arguments", "--memory GIB", "out-of-memory error"],
    "grader.runner": ["--socket-fd", "--preload", "--private-tmp", "--fresh"],
    "grader.classroom": ["GITHUB_ENV", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY", "one runner, `grader`"],
    "grader.gradescope": ["--root", "any depth"],
    "grader.classroom50": ["--checkout", "--not-graded REASON", "in half points", "status=", "SUBMISSION_TAG"],
}


def run(*args, cwd=ROOT):
    return python_m(*args, cwd=cwd, timeout=120)


@pytest.mark.parametrize("module", sorted(HELP))
def test_help(module, tmp_path):
    done = run(module, "--help", cwd=tmp_path)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    text = " ".join(done.stdout.split())
    assert all(" ".join(words.split()) in text for words in HELP[module]), done.stdout
    assert list(tmp_path.iterdir()) == []  # --help writes nothing


@pytest.mark.parametrize("args, message", [
    (["grader.batch", "nowhere", "--out", "out"], "nowhere is not a folder of submissions"),
    (["grader.batch", "tests/submissions", "--out", "out", "--rubric", "nowhere.yaml"], "invalid rubric"),
    (["grader.release", "README.md"], "README.md exists and is not an empty folder"),
    (["grader.release", "nowhere", "--classroom50", "README.md"], "README.md exists and is not an empty folder"),
    (["grader.release", "nowhere", "--classroom50", "nowhere/bundle"], "neither inside the other"),
    (["grader.timeline", "--submission", "nowhere.py"], "cannot draw the timeline of nowhere.py: "),
    (["grader.timeline", "--out", "README.md/inside"], "cannot write into README.md/inside"),
    (["grader.virtual", "nowhere.py"], "nowhere.py is not a file"),
    (["grader.virtual", "--memory", "0", "README.md"], "--memory must be more than 0 GiB"),
    (["grader.batch", "merge", "nowhere", "--out", "out"], "nowhere is not a batch's output folder"),
    (["grader.batch", "tests/submissions", "--out", "out", "--shard", "4/3"], "K must be between 1 and N"),
    (["grader.batch", "tests/submissions", "--out", "out", "--roster", "nowhere.csv"], "cannot read the roster"),
    (["grader.gradescope", "--root", "nowhere"], "nowhere/submission is not a folder"),
    (["grader.selftest", "--rubric", "nowhere.yaml"], "invalid rubric"),
    (["pytest", "grader/", "--grade-json", "README.md/grade.json"], "cannot write README.md/grade.json"),
    (["pytest", "grader/", "--rubric", "nowhere.yaml"], "invalid rubric"),
])
def test_a_bad_path_is_one_line(args, message, tmp_path):
    done = run(*args)
    assert done.returncode in (1, 2, 4), done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    said = [line for line in done.stderr.splitlines() if message in line]
    assert said, done.stderr
