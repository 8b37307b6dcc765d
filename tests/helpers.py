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
