"""Gradescope's run_autograder on a simulated /autograder (a temporary root): uploads at any
depth, two candidates refused with a reason, a missing answers file, and no internal path shown."""
import json
import os
import shutil
import subprocess
import sys

import pytest
from corpus import BONUS, FULL, POINTS, ROOT

REQUIRED = FULL - sum(POINTS[b] for b in BONUS)


def run_autograder(root):
    (root / "source").symlink_to(ROOT)
    env = {**os.environ, "AUTOGRADER_ROOT": str(root), "AUTOGRADER_PYTHON": sys.executable}
    done = subprocess.run([str(ROOT / "grader" / "gradescope" / "run_autograder")], capture_output=True, text=True,
                          timeout=600, env=env)
    assert done.returncode == 0, done.stderr
    text = (root / "results" / "results.json").read_text()
    assert str(root) not in text and "/tmp" not in text and "grading-" not in text  # no folder of ours
    return json.loads(text)


def upload(root, folder, answers=True):
    place = root / "submission" / folder
    place.mkdir(parents=True)
    shutil.copy(ROOT / "solutions" / "model.py", place / "model.py")
    if answers:
        shutil.copy(ROOT / "solutions" / "answers.yaml", place / "answers.yaml")


@pytest.mark.parametrize("folder", [".", "starter", "lab8-main/starter"])
def test_an_upload_at_any_depth_is_graded(folder, tmp_path):
    upload(tmp_path, folder)
    results = run_autograder(tmp_path)
    assert (results["score"], results["max_score"]) == (FULL, REQUIRED)
    assert results["output"].startswith(f"Score: {REQUIRED:g} / {REQUIRED:g} required, bonus +")


def test_a_missing_answers_file_costs_the_questions_and_says_so_plainly(tmp_path):
    upload(tmp_path, "lab8-main/starter", answers=False)
    results = run_autograder(tmp_path)
    questions = next(t for t in results["tests"] if t["number"] == "questions.answers")
    assert results["score"] == FULL - POINTS["questions.answers"] and questions["score"] == 0
    assert "answers.yaml does not exist" in questions["output"]


def test_two_candidates_are_a_reason_not_a_guess(tmp_path):
    upload(tmp_path, "old")
    upload(tmp_path, "new/starter")
    results = run_autograder(tmp_path)
    assert results["score"] == 0 and "2 files named model.py (new/starter/model.py, old/model.py)" in results["output"]


def test_an_upload_without_model_py_is_a_reason(tmp_path):
    (tmp_path / "submission").mkdir()
    (tmp_path / "submission" / "notes.txt").write_text("sorry")
    results = run_autograder(tmp_path)
    assert results["score"] == 0 and results["max_score"] == REQUIRED and "has no model.py" in results["output"]
