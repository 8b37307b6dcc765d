"""`python -m grader.release OUT`: the student template an instructor publishes (for example as
the GitHub Classroom template repository): the starter, the grader, the rubric and the
Classroom workflow; no solutions/, no project tests, no benchmarks.

Without the answer key the questions item is "not graded here" for students; the TA's batch,
run from the instructor's repository, grades it.
"""
import pathlib
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SHIPPED = ["starter", "grader", "rubric.yaml", "conftest.py", "pyproject.toml", ".github/workflows/classroom.yml"]

STUDENT_README = """# Practical 8: layer-wise model parallelism

```bash
pip install -e .          # on a machine without a GPU, first: pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
pytest grader/            # grades starter/model.py and starter/answers.yaml, item by item
```

Fill in the TODOs of `starter/model.py` and answer `starter/answers.yaml`. `python
starter/model.py` runs the handout's demo. With fewer than two GPUs everything runs on virtual
GPUs backed by the CPU (`python -m grader.virtual SCRIPT.py` runs any script that way).

Every push is graded by GitHub Classroom on a CPU runner. That grade is a preview: your
repository is yours, so your TA grades the final submission again with the course's own copy of
the grader, on your `starter/model.py` and `starter/answers.yaml` only. Changing the grader, the
rubric or the workflow here changes nothing in your grade.
"""


def release(out):
    out = pathlib.Path(out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} exists and is not empty")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SHIPPED:
        source, target = ROOT / name, out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            shutil.copy2(source, target)
    (out / "README.md").write_text(STUDENT_README)
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__.splitlines()[0])
    print(f"student template written to {release(sys.argv[1])}")
