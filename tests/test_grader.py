"""The grader graded: the solution, the starter, correct variants and buggy submissions, each
with exactly the rubric items it must pass and fail. Each runs `pytest grader/` as a user would."""
import json
import pathlib
import subprocess
import sys

import pytest
import yaml

from corpus import ALL, BONUS, BUGS, FULL, POINTS, ROOT, write

CORRECT = ROOT / "tests" / "submissions"  # correct solutions written in other styles


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


def pytest_grader(*args):
    return subprocess.run([sys.executable, "-m", "pytest", "grader/", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def grade(tmp_path, *args):
    out = tmp_path / "grade.json"
    run = pytest_grader("--grade-json", str(out), *args)
    assert "INTERNALERROR" not in run.stdout + run.stderr, run.stdout + run.stderr
    return run, json.loads(out.read_text())


def failed(graded):
    return sorted(c["id"] for c in graded["checks"] if c["status"] != "passed")


def test_solution_scores_full_marks(tmp_path):
    run, graded = grade(tmp_path, "--submission", "solutions/model.py", "--answers", "solutions/answers.yaml")
    bonus = sum(c["points"] for c in graded["checks"] if c["max_points"] == 0)
    assert (graded["score"], graded["max_score"], graded["mode"]) == (FULL, FULL - bonus, "virtual")
    assert bonus == POINTS["part6.pipelined"] > 0
    assert graded["bonus"] == bonus and graded["selection"] is None and graded["warnings"] == []
    assert run.returncode == 0
    assert f"Score: {FULL - bonus:g} / {FULL - bonus:g} required, bonus +{bonus:g}" in run.stdout
    assert "VIRTUAL mode" in run.stdout and "+10 bonus" in run.stdout


def test_starter_scores_zero_with_its_cause_said_once(tmp_path):
    run, graded = grade(tmp_path)
    assert (graded["score"], graded["max_score"]) == (0, FULL - POINTS["part6.pipelined"])
    assert run.returncode == 1
    assert graded["submission"].endswith("starter/model.py")
    for check in graded["checks"]:
        assert check["status"] == ("not_attempted" if check["bonus"] else "failed") and check["message"]
        assert "Traceback" not in check["message"]
    todo = [c for c in graded["checks"] if c["id"] != "questions.answers"]
    assert all("NotImplementedError: TODO" in c["message"] for c in todo)
    # The table is the report: the cause once at the top (and inside the bonus's note), no pytest
    # tracebacks or summary repeating it, one row for each blocked item.
    assert run.stdout.count("TODO Part 1: build the two layers") == 2 and "Fix this first" in run.stdout
    assert "FAILURES" not in run.stdout and "short test summary" not in run.stdout
    assert run.stdout.count("  blocked  ") == len(todo) - 1
    assert f"Score: 0 / {FULL - POINTS['part6.pipelined']:g} required, bonus not attempted" in run.stdout


@pytest.mark.parametrize("path", sorted(CORRECT.glob("*.py")), ids=lambda p: p.stem)
def test_correct_solution_in_another_style_scores_full_marks(path, tmp_path):
    run, graded = grade(tmp_path, "--submission", str(path), "--answers", "solutions/answers.yaml")
    assert failed(graded) == [], [(c["id"], c["message"]) for c in graded["checks"] if c["status"] != "passed"]
    assert graded["score"] == FULL and run.returncode == 0


@pytest.mark.parametrize("name", sorted(BUGS))
def test_submission_loses_exactly_its_mistakes(name, tmp_path):
    bug = BUGS[name]
    run, graded = grade(tmp_path, "--submission", str(write(name, tmp_path)),
                        "--answers", "solutions/answers.yaml", "--rubric", str(fast_rubric(tmp_path, bug.allow)))
    lost = [c for c in graded["checks"] if c["status"] != "passed"]
    assert failed(graded) == sorted(bug.loses), [(c["id"], c["message"]) for c in lost]
    assert all(c["status"] == "failed" and c["message"] and "internal grader error" not in c["message"]
               for c in lost)
    assert all(bug.reason in c["message"] for c in lost)
    assert graded["score"] == FULL - sum(POINTS[c["id"]] for c in lost)
    assert run.returncode == (1 if set(bug.loses) - set(BONUS) else 0)  # a lost required point fails the run
    scores = [line for line in run.stdout.splitlines() if line.startswith("Score: ")]
    required = graded["score"] - graded["bonus"]
    assert scores[-1].startswith(f"Score: {required:g} / {graded['max_score']:g} required")  # the grader's, last


def test_json_has_the_documented_shape(tmp_path):
    _, graded = grade(tmp_path, "--submission", str(write("bare_sync", tmp_path)))
    assert set(graded) == {"score", "max_score", "bonus", "selection", "mode", "isolation", "submission", "warnings",
                           "checks"}
    assert [c["id"] for c in graded["checks"]] == ALL
    for check in graded["checks"]:
        assert set(check) == {"id", "title", "points", "max_points", "bonus", "status", "message"}
        assert check["status"] in {"passed", "failed", "error", "not_graded", "not_selected", "not_run",
                                   "not_attempted"}


def test_answers_missing_beside_the_submission_lose_only_the_questions(tmp_path):
    _, graded = grade(tmp_path, "--submission", "solutions/model.py", "--answers", str(tmp_path / "none.yaml"))
    assert failed(graded) == ["questions.answers"]
    assert "does not exist" in next(c for c in graded["checks"] if c["id"] == "questions.answers")["message"]


def test_items_outside_their_modes_are_not_graded(tmp_path):
    path = rubric_file(tmp_path, lambda r: r["items"][0].update(modes=["real"]))
    _, graded = grade(tmp_path, "--submission", "solutions/model.py", "--answers", "solutions/answers.yaml",
                      "--rubric", str(path))
    first = graded["checks"][0]
    assert (first["status"], first["points"]) == ("not_graded", 0)
    assert "not graded in virtual mode" in first["message"]
    assert (graded["score"], graded["max_score"]) == (FULL - 8, FULL - 8 - POINTS["part6.pipelined"])


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["items"].append(dict(r["items"][0])), "duplicate id"),
    (lambda r: r["items"][0].update(points=-1), "points must be a number >= 0"),
    (lambda r: r["items"][0].update(id="part9.unknown"), "has no item"),
    (lambda r: r.update(items=[i for i in r["items"] if i["id"] != "questions.answers"]),
     "'questions.answers' has no item"),
    (lambda r: r["items"].append({"id": "part9.extra", "points": 1, "title": "x", "modes": ["virtual"]}),
     "'part9.extra' of"),
    (lambda r: r["items"][0].update(modes=["gpu"]), "modes must be"),
])
def test_invalid_rubric_is_a_clear_usage_error(edit, message, tmp_path):
    run = pytest_grader("--rubric", str(rubric_file(tmp_path, edit)))
    assert run.returncode == 4 and message in run.stderr, run.stderr


def test_forcing_real_mode_without_two_gpus_is_a_clear_error():
    run = pytest_grader("--grader-mode", "real")
    assert run.returncode == 4 and "--grader-mode real needs two CUDA GPUs" in run.stderr


def test_a_missing_submission_file_fails_every_model_check_with_one_reason(tmp_path):
    _, graded = grade(tmp_path, "--submission", str(tmp_path / "nowhere.py"), "--answers", "solutions/answers.yaml")
    lost = [c for c in graded["checks"] if c["status"] != "passed"]
    assert [c["id"] for c in lost] == [i for i in ALL if i != "questions.answers"]
    assert all("cannot read the submission" in c["message"] for c in lost)
