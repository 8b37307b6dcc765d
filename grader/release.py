"""`python -m grader.release OUT`: the student template an instructor publishes (for example as
the GitHub Classroom template repository): the starter, the grader, the rubric and the
Classroom workflow; no solutions/, no project tests, no benchmarks.

Without the answer key the questions item is "not graded here" for students; the TA's batch,
run from the instructor's repository, grades it.
"""
import argparse
import pathlib
import shutil

from grader import ROOT

SHIPPED = ["starter", "grader", "rubric.yaml", "conftest.py", "pyproject.toml", ".github/workflows/classroom.yml"]

STUDENT_README = """# Practical 8: layer-wise model parallelism

```bash
pip install -e .    # without a GPU, first: pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
pytest grader/      # grades starter/model.py and starter/answers.yaml, item by item
```

Fill in the TODOs of `starter/model.py` and answer `starter/answers.yaml`. `python
starter/model.py` runs the handout's demo. With fewer than two GPUs everything runs on virtual
GPUs backed by the CPU (`python -m grader.virtual SCRIPT.py` runs any script that way).

Every push is graded by GitHub Classroom on a CPU runner. That grade is a preview: your
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
    out = pathlib.Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SystemExit(f"{out} exists and is not an empty folder")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SHIPPED:
        source, target = ROOT / name, out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy2(source, target)
    (out / "README.md").write_text(STUDENT_README)
    (out / ".gitignore").write_text(GITIGNORE)
    project = out / "pyproject.toml"  # bare `pytest` in the template grades
    project.write_text(project.read_text().replace('testpaths = ["tests"]', 'testpaths = ["grader"]'))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m grader.release", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("out", type=pathlib.Path, help="the folder to write the template into (new or empty)")
    args = parser.parse_args(argv)
    try:
        print(f"student template written to {release(args.out)}")
    except OSError as error:
        parser.error(f"cannot write {args.out}: {error.strerror}")


if __name__ == "__main__":
    main()
