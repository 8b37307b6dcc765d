"""The student template: everything a student needs to grade locally, nothing they must not see."""
import shutil

from corpus import FULL, POINTS, ROOT
from helpers import python_m

from grader.release import release


def test_template_has_the_grader_but_no_solutions_and_grades_on_its_own(tmp_path):
    out = release(tmp_path / "template")
    shipped = {p.relative_to(out).parts[0] for p in out.rglob("*")}
    assert shipped == {"starter", "grader", "rubric.yaml", "conftest.py", "pyproject.toml", ".github", "README.md",
                       ".gitignore"}
    assert "classroom.json" in (out / ".gitignore").read_text()
    assert not any("solution" in str(p) for p in out.rglob("*"))
    assert (out / ".github" / "workflows" / "classroom.yml").read_text().startswith("# GitHub Classroom")
    shutil.copy(ROOT / "solutions" / "model.py", out / "starter" / "model.py")
    run = python_m("pytest", "-p", "no:cacheprovider", cwd=out)  # bare pytest grades there
    bonus = POINTS["part6.pipelined"]  # the questions wait for the TA, who has the key
    assert f"Score: {FULL - 5 - bonus:g} / {FULL - 5 - bonus:g} required, bonus +{bonus:g}" in run.stdout
    assert "not graded     questions.answers" in run.stdout and "answers are valid choices" in run.stdout
    assert run.returncode == 0


def test_release_refuses_a_folder_in_use(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    run = python_m("grader.release", tmp_path)
    assert run.returncode == 1 and run.stderr.strip() == f"{tmp_path} exists and is not an empty folder"


def test_release_help_writes_nothing(tmp_path):
    run = python_m("grader.release", "--help", cwd=tmp_path)
    assert run.returncode == 0 and "the folder to write the template into" in run.stdout
    assert list(tmp_path.iterdir()) == []
