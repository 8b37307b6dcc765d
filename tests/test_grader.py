"""The grader graded: the solution, the starter, correct variants and buggy submissions, each
with exactly the rubric items it must pass and fail. Each runs `pytest grader/` as a user would."""
import json
import pathlib
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "submissions"
ALL = [item["id"] for item in yaml.safe_load((ROOT / "rubric.yaml").read_text())["items"]]
MODEL = [i for i in ALL if i != "questions.answers"]
PART2 = [i for i in ALL if i.startswith("part2.")]
FORWARD = ["part1.input_moved_to_cuda0", "part1.output_on_cuda1", "part1.forward_math", "part1.single_transfer"]

# submission -> the rubric items it must fail (all others must pass)
EXPECTED_FAILURES = {
    "alt_sequential": [],
    "alt_events": [],
    "no_input_move": ["part1.input_moved_to_cuda0"],
    "no_target_move": ["part2.target_on_last_gpu"],
    "no_zero_grad": ["part2.matches_sgd"],
    "fixed_lr": ["part2.matches_sgd"],
    "fixed_steps": ["part2.losses_returned"],
    "loss_tensors": ["part2.losses_returned"],
    "loss_after_step": ["part2.matches_sgd"],
    "no_sync": ["part4.clock_after_sync", "part4.sync_covers_output_gpu"],
    "bare_sync": ["part4.sync_covers_output_gpu"],
    "sync_after_clock": ["part4.clock_after_sync"],
    "sync_before_forward": ["part4.clock_after_sync", "part4.sync_covers_output_gpu"],
    "made_up_time": ["part4.seconds_plausible"],
    "milliseconds": ["part4.seconds_plausible"],
    "host_round_trip": ["part1.single_transfer"],
    "no_relu2": ["part1.forward_math"],
    "verbose_always": ["part3.prints_devices"],
    "verbose_wrong_words": ["part3.prints_devices"],
    "no_verbose_param": ["part3.prints_devices"],
    "layer2_on_cuda0": ["part1.layer2_on_cuda1", "part1.output_on_cuda1", "part1.single_transfer",
                        "part3.prints_devices"],
    # A forward that cannot run fails every check that needs its output.
    "no_transfer": FORWARD + PART2 + ["part3.prints_devices", "part4.clock_after_sync",
                                      "part4.sync_covers_output_gpu", "part4.seconds_plausible"],
    "no_train": PART2,
    "endless_train": PART2,
    "exit_in_train": PART2,
    "syntax_error": MODEL,
    "exit_at_import": MODEL,
    "huge_allocation": MODEL,
}
# a phrase each failure message must contain, for the cases whose reason matters most
REASONS = {
    "syntax_error": "does not compile",
    "exit_at_import": "ended the grading process",
    "exit_in_train": "ended the grading process during train()",
    "endless_train": "did not finish within",
    "huge_allocation": "can't allocate memory",
    "no_train": "defines no `train`",
    "bare_sync": "waits for the current GPU (cuda:0) only",
}


@pytest.fixture(scope="session")
def fast_rubric(tmp_path_factory):
    """rubric.yaml with a short time limit, so the endless loop costs seconds, not half a minute."""
    rubric = yaml.safe_load((ROOT / "rubric.yaml").read_text())
    rubric["limits"]["seconds_per_function"] = 5
    rubric["answer_key"] = str(ROOT / "solutions" / "answers.yaml")
    path = tmp_path_factory.mktemp("rubric") / "rubric.yaml"
    path.write_text(yaml.safe_dump(rubric))
    return path


def grade(tmp_path, *args):
    out = tmp_path / "grade.json"
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "grader/", "-p", "no:cacheprovider", "--grade-json", str(out), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert "INTERNALERROR" not in run.stdout + run.stderr, run.stdout + run.stderr
    return run, json.loads(out.read_text())


def failed(graded):
    return sorted(c["id"] for c in graded["checks"] if c["status"] != "passed")


def test_solution_scores_full_marks(tmp_path):
    run, graded = grade(tmp_path, "--submission", "solutions/model.py", "--answers", "solutions/answers.yaml")
    assert (graded["score"], graded["max_score"], graded["mode"]) == (100, 100, "virtual")
    assert run.returncode == 0
    assert "Score: 100 / 100" in run.stdout and "VIRTUAL mode" in run.stdout


def test_starter_scores_zero_with_one_reason_per_item(tmp_path):
    run, graded = grade(tmp_path)
    assert (graded["score"], graded["max_score"]) == (0, 100)
    assert run.returncode == 1
    assert graded["submission"].endswith("starter/model.py")
    for check in graded["checks"]:
        assert check["status"] == "failed" and check["message"]
        assert "Traceback" not in check["message"]
    todo = [c for c in graded["checks"] if c["id"] != "questions.answers"]
    assert all("NotImplementedError: TODO" in c["message"] for c in todo)


@pytest.mark.parametrize("name", sorted(EXPECTED_FAILURES))
def test_submission_loses_exactly_its_mistakes(name, tmp_path, fast_rubric):
    run, graded = grade(tmp_path, "--submission", str(CORPUS / f"{name}.py"),
                        "--answers", "solutions/answers.yaml", "--rubric", str(fast_rubric))
    assert failed(graded) == sorted(EXPECTED_FAILURES[name]), [
        (c["id"], c["message"]) for c in graded["checks"] if c["status"] != "passed"]
    lost = [c for c in graded["checks"] if c["status"] != "passed"]
    assert all(c["status"] == "failed" and c["message"] and "internal grader error" not in c["message"]
               for c in lost)
    if name in REASONS:
        assert all(REASONS[name] in c["message"] for c in lost)
    assert graded["score"] == 100 - sum(c["max_points"] for c in lost)
    assert run.returncode == (1 if lost else 0)


def test_json_has_the_documented_shape(tmp_path):
    _, graded = grade(tmp_path, "--submission", str(CORPUS / "bare_sync.py"))
    assert set(graded) == {"score", "max_score", "mode", "submission", "checks"}
    assert [c["id"] for c in graded["checks"]] == ALL
    for check in graded["checks"]:
        assert set(check) == {"id", "title", "points", "max_points", "status", "message"}
        assert check["status"] in {"passed", "failed", "error", "not_graded"}


def test_answers_missing_beside_the_submission_lose_only_the_questions(tmp_path):
    _, graded = grade(tmp_path, "--submission", "solutions/model.py", "--answers", str(tmp_path / "none.yaml"))
    assert failed(graded) == ["questions.answers"]
    assert "does not exist" in graded["checks"][-1]["message"]


def test_items_outside_their_modes_are_not_graded(tmp_path):
    rubric = yaml.safe_load((ROOT / "rubric.yaml").read_text())
    rubric["items"][0]["modes"] = ["real"]
    rubric["answer_key"] = str(ROOT / "solutions" / "answers.yaml")
    path = tmp_path / "rubric.yaml"
    path.write_text(yaml.safe_dump(rubric))
    _, graded = grade(tmp_path, "--submission", "solutions/model.py", "--answers", "solutions/answers.yaml",
                      "--rubric", str(path))
    first = graded["checks"][0]
    assert (first["status"], first["points"]) == ("not_graded", 0)
    assert "not graded in virtual mode" in first["message"]
    assert (graded["score"], graded["max_score"]) == (100 - first["max_points"], 100 - first["max_points"])


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["items"].append(dict(r["items"][0])), "duplicate id"),
    (lambda r: r["items"][0].update(points=-1), "points must be a number >= 0"),
    (lambda r: r["items"][0].update(id="part9.unknown"), "has no item"),
    (lambda r: r["items"].pop(), "'questions.answers' has no item"),
    (lambda r: r["items"].append({"id": "part9.extra", "points": 1, "title": "x", "modes": ["virtual"]}),
     "'part9.extra' of"),
    (lambda r: r["items"][0].update(modes=["gpu"]), "modes must be"),
])
def test_invalid_rubric_is_a_clear_usage_error(edit, message, tmp_path):
    rubric = yaml.safe_load((ROOT / "rubric.yaml").read_text())
    edit(rubric)
    path = tmp_path / "rubric.yaml"
    path.write_text(yaml.safe_dump(rubric))
    run = subprocess.run([sys.executable, "-m", "pytest", "grader/", "-q", "--rubric", str(path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 4 and message in run.stderr, run.stderr


def test_forcing_real_mode_without_two_gpus_is_a_clear_error():
    run = subprocess.run([sys.executable, "-m", "pytest", "grader/", "-q", "--grader-mode", "real"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 4 and "--grader-mode real needs two CUDA GPUs" in run.stderr
