"""`python -m grader.release OUT [--classroom50 BUNDLE]`: the student template an instructor
publishes (the assignment's template repository): the starter, the grader, the rubric and the
workflow; no solutions/, no project tests, no benchmarks. With --classroom50, also the teacher's
Classroom 50 bundle (for CLASSROOM/autograders/ASSIGNMENT/ of the classroom50 repository):
autograder.py beside its own copy of the grader, which grades each student's starter/ with it,
never with the checkout's.

Neither holds the answer key (the bundle is served publicly), so the questions item is "not graded
here" for students; the TA's batch, run from the instructor's repository, grades it.
"""
import argparse
import pathlib
import shutil

from grader import ROOT

SHIPPED = ["starter", "grader", "rubric.yaml", "conftest.py", "pyproject.toml", ".github/workflows/classroom.yml"]
BUNDLED = ["grader", "rubric.yaml", "conftest.py", "pyproject.toml"]  # beside autograder.py

STUDENT_README = """# Practical 8: layer-wise model parallelism

```bash
pip install -e .    # without a GPU, first: pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
pytest grader/      # grades starter/model.py and starter/answers.yaml, item by item
```

Fill in the TODOs of `starter/model.py` and answer `starter/answers.yaml`. `python
starter/model.py` runs the handout's demo. With fewer than two GPUs everything runs on virtual
GPUs backed by the CPU (`python -m grader.virtual SCRIPT.py` runs any script that way).

Every push is graded on a CPU runner (by Classroom 50, or by the template's own workflow). That grade is a preview: your
repository is yours, so your TA grades the final submission again with the course's own copy of
the grader, on your `starter/model.py` and `starter/answers.yaml` only. Changing the grader, the
rubric or the workflow here changes nothing in your grade.
"""


GITIGNORE = """__pycache__/
*.egg-info/
.pytest_cache/
/build/
classroom.json
"""


def release(out):
    """Write the template into `out` (new or empty); SystemExit with one line when it cannot."""
    out = _empty_folder(out)
    _copy(SHIPPED, out)
    (out / "README.md").write_text(STUDENT_README)
    (out / ".gitignore").write_text(GITIGNORE)
    project = out / "pyproject.toml"  # bare `pytest` in the template grades
    project.write_text(project.read_text().replace('testpaths = ["tests"]', 'testpaths = ["grader"]'))
    return out


def bundle(out):
    """Write the Classroom 50 bundle into `out` (new or empty): autograder.py at its top, beside the
    grader it runs; SystemExit with one line when it cannot."""
    out = _empty_folder(out)
    _copy(BUNDLED, out)
    shutil.copy2(ROOT / "grader" / "classroom50" / "autograder.py", out / "autograder.py")
    return out


def _empty_folder(out):
    out = pathlib.Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SystemExit(f"{out} exists and is not an empty folder")
    return out


def _copy(names, out):
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in names:
        source, target = ROOT / name, out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy2(source, target)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m grader.release", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("out", type=pathlib.Path, help="the folder to write the template into (new or empty)")
    parser.add_argument("--classroom50", type=pathlib.Path, metavar="BUNDLE",
                        help="also write the Classroom 50 bundle into BUNDLE (new or empty; README, Classroom 50)")
    args = parser.parse_args(argv)
    writes = [(args.out, release, "student template")] + ([(args.classroom50, bundle, "Classroom 50 bundle")]
                                                           if args.classroom50 else [])
    if args.classroom50:
        a, b = args.out.resolve(), args.classroom50.resolve()
        if a == b or a in b.parents or b in a.parents:
            parser.error("the template and the bundle need folders of their own, neither inside the other")
    for target, _, _ in writes:  # both checked before either is written
        _empty_folder(target)
    for target, write, what in writes:
        try:
            print(f"{what} written to {write(target)}")
        except OSError as error:
            parser.error(f"cannot write {target}: {error.strerror}")


if __name__ == "__main__":
    main()
