"""The grader graded: the solution, the starter, correct variants and buggy submissions, each
with exactly the rubric items it must pass and fail. The corpus of buggy submissions is graded as
a TA grades a class (grader.batch); the rest run `pytest grader/` as a student would."""
import json
import shutil

import pytest
from corpus import ALL, BONUS, BUGS, FULL, POINTS, ROOT, write
from helpers import failed, fast_rubric, grade, pytest_grader, python_m, rubric_file, submitted

CORRECT = ROOT / "tests" / "submissions"  # correct solutions written in other styles


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
    assert graded["score"] == FULL and run.returncode == 0 and graded["warnings"] == []


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """{name: (grade, feedback)} of every corpus submission, graded as a TA grades a class: one
    batch per set of extra imports a bug needs, so that one hostile submission beside the others
    must change nothing for them."""
    graded = {}
    for allow in sorted({bug.allow for bug in BUGS.values()}):
        root = tmp_path_factory.mktemp("corpus")
        (root / "class").mkdir()
        names = [name for name, bug in BUGS.items() if bug.allow == allow]
        for name in names:
            write(name, root / "class")
            shutil.copy(ROOT / "solutions" / "answers.yaml", root / "class" / f"{name}.yaml")
        run = python_m("grader.batch", root / "class", "--out", root / "out", "-j", "2",
                       "--rubric", fast_rubric(root, allow), timeout=1800)
        assert run.returncode == 0, run.stderr
        for name in names:
            result = json.loads((root / "out" / "results" / f"{name}.json").read_text())
            graded[name] = result["grade"], (root / "out" / "feedback" / f"{name}.md").read_text()
    return graded


@pytest.mark.parametrize("name", sorted(BUGS))
def test_submission_loses_exactly_its_mistakes(name, corpus):
    bug, (graded, feedback) = BUGS[name], corpus[name]
    lost = [c for c in graded["checks"] if c["status"] != "passed"]
    assert failed(graded) == sorted(bug.loses), [(c["id"], c["message"]) for c in lost]
    assert all(c["status"] == "failed" and c["message"] and "internal grader error" not in c["message"]
               for c in lost)
    assert all(bug.reason in c["message"] for c in lost)
    assert graded["score"] == FULL - sum(POINTS[c["id"]] for c in lost)
    assert not any(str(ROOT) in text for text in graded["warnings"] + [c["message"] for c in lost])  # no grader file
    assert bug.loses or name == "prints_fake_score" or graded["warnings"] == []  # torch's warnings are not its prints
    scores = [line for line in feedback.splitlines() if line.startswith("Score: ")]
    required = graded["score"] - graded["bonus"]
    assert scores[-1].startswith(f"Score: {required:g} / {graded['max_score']:g} required")  # the grader's, last


def test_weights_train_left_not_finite_are_named_so(corpus):
    graded, _ = corpus["nan_weights"]
    assert "hold NaN or infinite values" in next(c["message"] for c in graded["checks"]
                                                  if c["id"] == "part2.matches_sgd")


def test_a_regrade_gives_the_same_grade(tmp_path):
    """A submission drawing unseeded random numbers (a fresh target every step) graded three times:
    every probe starts from the same random state, so the grades are the same, row for row."""
    path = write("random_target", tmp_path)
    grades = [grade(tmp_path, *submitted(path))[1] for _ in range(3)]
    rows = [[(c["id"], c["status"], c["points"], c["message"]) for c in g["checks"]] for g in grades]
    assert rows[0] == rows[1] == rows[2]
    assert failed(grades[0]) == sorted(BUGS["random_target"].loses)


def test_a_lost_required_point_fails_the_run_and_a_lost_bonus_does_not(tmp_path):
    for name in ("bare_sync", "pipeline_reordered"):
        run, _ = grade(tmp_path, "--submission", str(write(name, tmp_path)), "--answers", "solutions/answers.yaml")
        assert run.returncode == (1 if set(BUGS[name].loses) - set(BONUS) else 0), name


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


@pytest.mark.parametrize("edit, message", [  # the rest of the rubric's rules: tests/test_rubric.py
    (lambda r: r.update(items=[i for i in r["items"] if i["id"] != "questions.answers"]),
     "'questions.answers' has no item"),
    (lambda r: r["items"].append({"id": "part9.extra", "points": 1, "title": "x", "modes": ["virtual"]}),
     "'part9.extra' of"),
])
def test_rubric_and_checks_that_disagree_are_a_clear_usage_error(edit, message, tmp_path):
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
