"""What a student reads: subsets that grade themselves, the bonus apart from the required score,
answers judged as the words typed with credit per answer, and stray output reported once."""

import yaml
from corpus import BONUS, FULL, POINTS, ROOT, write
from helpers import grade, pytest_grader, python_m, submitted

REQUIRED = FULL - sum(POINTS[i] for i in BONUS)
PART1 = sum(p for i, p in POINTS.items() if i.startswith("part1."))


def statuses(graded):
    return {c["id"]: c["status"] for c in graded["checks"]}


def test_one_file_grades_itself(tmp_path):
    run, graded = grade(tmp_path, *submitted(), paths=["grader/checks/test_part1.py"])
    assert run.returncode == 0
    assert {i for i, s in statuses(graded).items() if s == "passed"} == {i for i in POINTS if i.startswith("part1.")}
    assert {s for i, s in statuses(graded).items() if not i.startswith("part1.")} == {"not_selected"}
    assert graded["selection"] == {"score": PART1, "max_score": PART1, "bonus": 0}
    assert f"Selected: {PART1:g} / {PART1:g} required; in all: {PART1:g} / {REQUIRED:g} required" in run.stdout
    assert "not selected in this run: 13 items" in run.stdout and "deselected?" not in run.stdout


def test_k_and_node_ids_select_and_a_failure_in_the_selection_fails_the_run(tmp_path):
    run, graded = grade(tmp_path, "-k", "part1 or part4", *submitted(write("bare_sync", tmp_path)))
    assert run.returncode == 1 and graded["selection"]["max_score"] == PART1 + 20
    assert statuses(graded)["part4.sync_covers_output_gpu"] == "failed"
    assert statuses(graded)["part2.matches_sgd"] == "not_selected"
    run, graded = grade(tmp_path, *submitted(), paths=["grader/checks/test_part4.py::test_clock_after_sync"])
    assert run.returncode == 0 and [i for i, s in statuses(graded).items() if s != "not_selected"] == [
        "part4.clock_after_sync"]


def test_x_stops_and_says_what_did_not_run(tmp_path):
    run, graded = grade(tmp_path, "-x", *submitted(write("fixed_lr", tmp_path)))
    assert run.returncode == 1 and statuses(graded)["part2.matches_sgd"] == "failed"
    assert statuses(graded)["part3.prints_devices"] == "not_run" and "not run: the session stopped" in run.stdout


def test_the_mapping_is_checked_against_every_check_whatever_is_selected(tmp_path):
    rubric = yaml.safe_load((ROOT / "rubric.yaml").read_text())
    rubric["items"] = [i for i in rubric["items"] if i["id"] != "part4.seconds_plausible"]
    rubric["answer_key"] = str(ROOT / "solutions" / "answers.yaml")
    (tmp_path / "rubric.yaml").write_text(yaml.safe_dump(rubric))
    run = pytest_grader("--rubric", tmp_path / "rubric.yaml", paths=["grader/checks/test_part1.py"])
    assert run.returncode == 4 and "check 'part4.seconds_plausible' has no item" in run.stderr


def test_bare_pytest_runs_the_project_tests_here_and_points_the_way_from_starter():
    run = python_m("pytest", "--co", "-q", "-p", "no:cacheprovider")
    assert run.returncode == 0 and "tests/test_feedback.py::" in run.stdout and "grader/checks" not in run.stdout
    run = python_m("pytest", "-p", "no:cacheprovider", cwd=ROOT / "starter")
    assert run.returncode == 5 and "run `pytest grader/`" in run.stdout and "(cd ..)" in run.stdout


def test_an_unattempted_bonus_is_neither_failed_nor_a_reason_to_exit_non_zero(tmp_path):
    source = (ROOT / "solutions" / "model.py").read_text().replace(
        "        chunks = iter(", "        raise NotImplementedError(\"TODO Part 6\")\n        chunks = iter(")
    (tmp_path / "model.py").write_text(source)
    run, graded = grade(tmp_path, *submitted(tmp_path / "model.py"))
    assert run.returncode == 0 and statuses(graded)["part6.pipelined"] == "not_attempted"
    assert f"Score: {REQUIRED:g} / {REQUIRED:g} required, bonus not attempted" in run.stdout
    assert "FAILED" not in run.stdout and "not attempted  part6.pipelined" in run.stdout


def test_the_bonus_never_hides_a_required_loss(tmp_path):
    run, graded = grade(tmp_path, *submitted(write("profile_constants", tmp_path)))
    lost = sum(POINTS[i] for i, s in statuses(graded).items() if s == "failed")
    assert lost and graded["bonus"] == POINTS["part6.pipelined"] and run.returncode == 1
    assert f"Score: {REQUIRED - lost:g} / {REQUIRED:g} required, bonus +{graded['bonus']:g}" in run.stdout


def _answers(tmp_path, edit):
    """The key as a student's answers.yaml, each answer written as YAML would read `edit` of it."""
    text = (ROOT / "solutions" / "answers.yaml").read_text()
    for old, new in edit:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    (tmp_path / "answers.yaml").write_text(text)
    return tmp_path / "answers.yaml"


def _questions(graded):
    return next(c for c in graded["checks"] if c["id"] == "questions.answers")


def test_unquoted_yes_and_no_are_the_words_typed(tmp_path):
    answers = _answers(tmp_path, [('  answer: "no"', "  answer: no")])
    run, graded = grade(tmp_path, *submitted(answers=answers))
    assert _questions(graded)["status"] == "passed" and run.returncode == 0


def test_each_answer_earns_its_share_and_an_off_list_answer_lists_the_choices(tmp_path):
    answers = _answers(tmp_path, [('  answer: "no"', "  answer: yes"), ('  answer: "cuda:1"', "  answer: gpu1")])
    _, graded = grade(tmp_path, *submitted(answers=answers))
    questions = _questions(graded)
    assert questions["points"] == POINTS["questions.answers"] * 8 / 10
    assert "8 of 10 answers match the key" in questions["message"]
    assert "to revisit: gpus_overlap" in questions["message"]
    assert "output_device: 'gpu1' is none of 'cuda:0', 'cuda:1' or 'cpu'" in questions["message"]


def test_without_the_key_the_answers_are_checked_for_form(tmp_path):
    rubric = yaml.safe_load((ROOT / "rubric.yaml").read_text())
    rubric["answer_key"] = str(tmp_path / "absent.yaml")  # the student template ships no key
    (tmp_path / "rubric.yaml").write_text(yaml.safe_dump(rubric))
    answers = _answers(tmp_path, [('  answer: "no"', "  answer: nope")])
    run, graded = grade(tmp_path, "--rubric", str(tmp_path / "rubric.yaml"), *submitted(answers=answers),
                        paths=["grader/checks/test_questions.py"])
    questions = _questions(graded)
    assert questions["status"] == "not_graded" and "your TA grades the answers" in questions["message"]
    assert "9 of 10 answers are valid choices" in questions["message"]
    assert "gpus_overlap: 'nope'" in questions["message"]


def test_stray_output_is_one_warning_not_noise_in_the_progress(tmp_path):
    source = 'print("Forward time:", 0.00498)\n' + (ROOT / "solutions" / "model.py").read_text()
    (tmp_path / "model.py").write_text(source)
    run, graded = grade(tmp_path, *submitted(tmp_path / "model.py"))
    assert run.returncode == 0 and len(graded["warnings"]) == 1
    assert graded["warnings"][0].startswith("your code printed 'Forward time: 0.00498' while it was graded")
    assert run.stdout.count("Forward time") == 1 and 'if __name__ == "__main__":' in " ".join(run.stdout.split())
