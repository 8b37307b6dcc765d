"""The student template: everything a student needs to grade locally, nothing they must not see."""
import shutil
import subprocess
import sys

from corpus import FULL, POINTS, ROOT
from grader.release import release


def test_template_has_the_grader_but_no_solutions_and_grades_on_its_own(tmp_path):
    out = release(tmp_path / "template")
    shipped = {p.relative_to(out).parts[0] for p in out.rglob("*")}
    assert shipped == {"starter", "grader", "rubric.yaml", "conftest.py", "pyproject.toml", ".github", "README.md"}
    assert not any("solution" in str(p) for p in out.rglob("*"))
    assert (out / ".github" / "workflows" / "classroom.yml").read_text().startswith("# GitHub Classroom")
    shutil.copy(ROOT / "solutions" / "model.py", out / "starter" / "model.py")
    run = subprocess.run([sys.executable, "-m", "pytest", "grader/", "-p", "no:cacheprovider"],
                         cwd=out, capture_output=True, text=True, timeout=300)
    assert f"Score: {FULL - 5:g} / {FULL - 5 - POINTS['part6.pipelined']:g}" in run.stdout  # the questions
    # wait for the TA, who has the key; the bonus is extra credit
    assert "questions.answers" in run.stdout and "not_graded" in run.stdout
    assert run.returncode == 0


def test_release_refuses_a_folder_in_use(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    try:
        release(tmp_path)
    except SystemExit as error:
        assert "not empty" in str(error)
    else:
        raise AssertionError("release wrote into a non-empty folder")
