"""What the project's tests share: running the project's commands as their users would, grading
runs, and rubric copies."""
import json
import os
import pathlib
import subprocess
import sys

import yaml
from corpus import ROOT


def python_m(module, *args, cwd=ROOT, env=None, timeout=600):
    """`python -m MODULE ARGS` (from the project, unless `cwd`), as a finished process; `env`: more
    environment variables."""
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **env} if env else None)


def pytest_grader(*args, paths=("grader/",)):
    """`pytest PATHS -p no:cacheprovider ARGS` in the project, as a finished process."""
    return python_m("pytest", *paths, "-p", "no:cacheprovider", *args, timeout=300)


def grade(tmp_path, *args, paths=("grader/",)):
    """(the run, its --grade-json) of a grading run; never a traceback or an internal error."""
    out = tmp_path / "grade.json"
    run = pytest_grader("--grade-json", str(out), *args, paths=paths)
    assert "INTERNALERROR" not in run.stdout + run.stderr and "Traceback" not in run.stdout, run.stdout + run.stderr
    return run, json.loads(out.read_text())


def submitted(submission="solutions/model.py", answers="solutions/answers.yaml"):
    """The options that grade `submission` with `answers` (by default: the solution and its key)."""
    return "--submission", str(submission), "--answers", str(answers)


def failed(graded):
    return sorted(c["id"] for c in graded["checks"] if c["status"] != "passed")


def rubric_file(folder, edit):
    """A copy of rubric.yaml changed by `edit(data)`, whose answer key still resolves."""
    rubric = yaml.safe_load((ROOT / "rubric.yaml").read_text())
    rubric["answer_key"] = str(ROOT / "solutions" / "answers.yaml")
    edit(rubric)
    path = pathlib.Path(folder) / "rubric.yaml"
    path.write_text(yaml.safe_dump(rubric))
    return path


def fast_rubric(folder, allow=()):
    """A short time limit, so an endless loop costs seconds, not half a minute; `allow`: more imports."""
    def edit(rubric):
        rubric["limits"]["seconds_per_function"] = 5
        rubric["allowed_imports"] += list(allow)
    return rubric_file(folder, edit)


# A class with known mistakes, as results a batch would have written: {student: {item: (status,
# message, fraction)}} on top of full marks, and each student's batch status. Messages are the
# checks' own wording, each with that student's numbers and lines.
SLOW = ("time_forward() returned {0}, which is not the difference of the clock readings around the forward "
        "({1}): return end - start, in seconds (handout Part 4)")
EARLY_CLOCK = ("the end clock (line {0}) is read without first waiting for the forward's work: CUDA calls return "
               "before the GPUs finish, so the clock stops too early (handout Part 4)")
MIXED = ("model(x) raised RuntimeError: Expected all tensors to be on the same device, but found at least two "
         "devices, cuda:0 and cuda:1! (line {0})")
BARE = ("after the forward the code waits only for cuda:0; the output is computed on cuda:1, and "
        "torch.cuda.synchronize() without a device waits for the current GPU (cuda:0) only")
HOSTILE = "printed ['<script>alert(1)</script>'] " + "x" * 5000  # a message is the student's to shape
MISTAKES = {
    "alice": {},
    "bob": {"part4.sync_covers_output_gpu": ("failed", BARE, 0)},
    "carol": {"part4.sync_covers_output_gpu": ("failed", BARE, 0),
              "part4.seconds_plausible": ("failed", SLOW.format(0.00013, 0.00666091), 0)},
    "dave": {"part4.seconds_plausible": ("failed", SLOW.format(12.5, 0.0042), 0),
             "part4.clock_after_sync": ("failed", EARLY_CLOCK.format(48), 0)},
    "erin": {"part4.clock_after_sync": ("failed", EARLY_CLOCK.format(53), 0),
             "questions.answers": ("failed", "9 of 10 answers match the key; to revisit: sync_needed", 0.9)},
    "frank": {"part4.clock_after_sync": ("failed", MIXED.format(27), 0),
              "part6.pipelined": ("not_attempted", "PipelinedMPModel is still the starter's stub", 0)},
    "mal#lory<script>": {"part3.prints_devices": ("failed", HOSTILE, 0)},
}
STATUSES = {"gina": ("timeout", "grading did not finish within 150 s"),
            "hank": ("tamper-suspected", "tamper-suspected: line 12 uses ._exit")}
ABSENT = "ivan"  # on the roster, without a submission


def synthetic_class(out):
    """A gradebook in `out` as a batch with a roster writes it (results, feedback, logs, then
    publish), from MISTAKES and STATUSES; returns the rubric."""
    from grader import gradebook, report, rubric

    lab = rubric.load(ROOT / "rubric.yaml")
    out = pathlib.Path(out)
    for folder in ("results", "feedback", "logs"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    everyone = {**{name: ("graded", "") for name in MISTAKES}, **STATUSES}
    for name, (status, reason) in everyone.items():
        mistakes = MISTAKES.get(name, {})
        results = {i: report.Result(*mistakes[i]) if i in mistakes else
                   report.Result("failed", reason) if status != "graded" else report.Result("passed")
                   for i in lab.items}
        grade = report.grade(lab, results, "virtual", f"{name}.py", "bwrap")
        result = {"student": name, "status": status, "reason": reason, "grade": grade, "grader": "0123abcd",
                  "submission": "feed"}
        (out / "results" / f"{name}.json").write_text(json.dumps(result))
        (out / "feedback" / f"{name}.md").write_text(f"# Grade for {name}\n")
        (out / "logs" / f"{name}.log").write_text("log\n")
    roster = out.parent / "roster.csv"
    names = [*everyone, ABSENT]
    roster.write_text("identifier,github_username\n" + "".join(f"s{k}@uni.edu,{n}\n" for k, n in enumerate(names)))
    gradebook.publish(out, list(lab.items), gradebook.Roster(roster))
    return lab
