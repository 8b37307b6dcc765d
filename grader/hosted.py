"""One student's work graded as a hosted platform hands it over (Gradescope's upload, a Classroom 50
checkout): only model.py and the answers.yaml beside it are copied, regular files only and never
through a link, into a private folder, and grader.batch grades that copy (the sandbox, the pristine
grader). Nothing else of the student's folder is read, so an edited grader, rubric or pytest
configuration there changes nothing.
"""
import contextlib
import json
import pathlib
import shutil
import subprocess
import sys
import tempfile

from grader import ROOT

STUDENT = "submission"  # the one student of the private class


@contextlib.contextmanager
def private_copy(folder, model):
    """A private folder whose class/submission/ holds copies of FOLDER/MODEL and the answers.yaml
    beside it (each only if it is a regular file reached through no link), yielded."""
    folder, model = pathlib.Path(folder), pathlib.Path(model)
    with tempfile.TemporaryDirectory(prefix="grading-") as work:
        work = pathlib.Path(work)
        student = work / "class" / STUDENT
        student.mkdir(parents=True)
        for relative in (model, model.with_name("answers.yaml")):
            if _plain_file(folder, relative):
                shutil.copyfile(folder / relative, student / relative.name)
        yield work


def _plain_file(folder, relative):
    steps = [folder / pathlib.Path(*relative.parts[:n]) for n in range(1, len(relative.parts) + 1)]
    return not any(step.is_symlink() for step in steps) and steps[-1].is_file()


def model_copy(work):
    """The copied model.py of `work` (absent when the student's was not a plain file)."""
    return work / "class" / STUDENT / "model.py"


def grade(work, mode="virtual", unisolated=False):
    """grader.batch's result, in `mode`, for the student of `work` ({student, status, reason, grade,
    ...}, as in results/NAME.json), with no folder of this machine in it; None when the batch wrote
    none. `unisolated`: grade even where no isolation is available (the grade records it)."""
    subprocess.run([sys.executable, "-m", "grader.batch", str(work / "class"), "--out", str(work / "out"),
                    "--grader-mode", mode, "-j", "1", *(["--no-isolation"] if unisolated else [])],
                   cwd=ROOT, check=False)
    produced = work / "out" / "results" / f"{STUDENT}.json"
    return without_paths(json.loads(produced.read_text()), work) if produced.exists() else None


def without_paths(data, work):
    """`data` (JSON-shaped) with every mention of the private folder taken out."""
    text = json.dumps(data)
    for prefix in (f"{work}/class/{STUDENT}/", f"{work}/class/", str(work)):
        text = text.replace(prefix, "")
    return json.loads(text)
