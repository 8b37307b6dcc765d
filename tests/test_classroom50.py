"""Classroom 50: the bundle's autograder.py run as the runner runs it (`python autograder.py` in the
student's checkout, made from the released template), each result judged by Classroom 50's own
rules (tests/classroom50.py): valid whole numbers, each item's share the grader's own in half
points, green exactly at every required point, every lost item's reason in the body, the timeline
a valid asset, no answer key in the bundle, and a checkout whose grader was rigged graded the same.
"""
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest
from classroom50 import BODY_LIMIT, BUNDLE_MAX_BYTES, DESCRIPTION_LIMIT, asset_problems, invalid, published
from corpus import BONUS, BUGS, POINTS, ROOT, write
from helpers import grade, python_m, submitted

from grader import report, rubric
from grader.release import bundle, release

IDENTITY = {"CLASSROOM": "ml-fall", "ASSIGNMENT": "lab8", "SUBMISSION_TAG": "submit/2026-12-01T12-00-00Z-abc1234",
            "COMMIT_URL": "https://github.com/ml-fall/lab8-student/commit/abc1234",
            "RELEASE_URL": "https://github.com/ml-fall/lab8-student/releases/tag/submit%2F2026"}
QUESTIONS = "questions.answers"  # no key in a public bundle: 0 / 0 there
GRADED_HERE = [i for i in POINTS if i != QUESTIONS]
RIGGED_INIT = """import json, pathlib
pathlib.Path("result.json").write_text(json.dumps({"score": 999}))
raise SystemExit(0)
"""


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """(template, bundle) as `python -m grader.release OUT --classroom50 BUNDLE` writes them."""
    where = tmp_path_factory.mktemp("released")
    return release(where / "template"), bundle(where / "bundle")


def checkout(released, folder, model=None):
    """A student's checkout: the template, with `model` as starter/model.py and the key's answers."""
    shutil.copytree(released[0], folder)
    shutil.copy(model or ROOT / "solutions" / "model.py", folder / "starter" / "model.py")
    shutil.copy(ROOT / "solutions" / "answers.yaml", folder / "starter" / "answers.yaml")
    return folder


def autograde(released, folder):
    """(result, body, status, summary) the runner publishes after `python autograder.py` in `folder`."""
    outputs = folder.parent / f"{folder.name}.output"
    env = {**os.environ, **IDENTITY, "GITHUB_OUTPUT": str(outputs)}
    done = subprocess.run([sys.executable, str(released[1] / "autograder.py")], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr  # non-zero: the runner's empty 0/0 error instead
    result, body, status = published(folder, outputs.read_text(), IDENTITY["CLASSROOM"], IDENTITY["ASSIGNMENT"])
    assert result is not None, invalid(json.loads((folder / "result.json").read_text()), "ml-fall", "lab8")
    assert body is not None and len(body) <= BODY_LIMIT
    summary = [line for line in outputs.read_text().splitlines() if line.startswith("summary=")][-1]
    assert len(summary.removeprefix("summary=")) <= DESCRIPTION_LIMIT
    return result, body, status, summary


def shares(result):
    return {t["test-name"].split(":")[0]: (t["score"], t["max-score"]) for t in result["tests"]}


@pytest.fixture(scope="module")
def buggy(released, tmp_path_factory):
    """The bare-synchronize fault's checkout and what the runner publishes for it."""
    where = tmp_path_factory.mktemp("buggy")
    return autograde(released, checkout(released, where / "student", write("bare_sync", where)))


def test_the_solution_earns_every_item_in_half_points_and_is_green(released, tmp_path):
    folder = checkout(released, tmp_path / "student")
    result, body, status, summary = autograde(released, folder)
    assert shares(result) == {**{i: (POINTS[i] * 2, POINTS[i] * 2) for i in GRADED_HERE}, QUESTIONS: (0, 0)}
    assert (result["score"], result["max-score"]) == (2 * sum(POINTS[i] for i in GRADED_HERE),) * 2
    assert status == "success" and summary.endswith("bonus +10 (virtual mode)")
    assert "your TA grades the answers" in body and "a preview" in body
    assets = folder / "classroom50-release-assets"
    assert [p.name for p in assets.iterdir()] == ["timeline.svg"] and not asset_problems(assets)
    assert (assets / "timeline.svg").read_text().startswith("<svg")


def test_a_buggy_submission_loses_exactly_its_items_with_their_reasons(buggy):
    result, body, status, _ = buggy
    lost = BUGS["bare_sync"].loses
    assert {i for i, (score, most) in shares(result).items() if score < most} == set(lost)
    assert all(shares(result)[i] == (0, POINTS[i] * 2) for i in lost)
    assert status == "failure" and not all(t["passed"] for t in result["tests"])
    titles = {i.id: i.title for i in rubric.load(ROOT / "rubric.yaml").items.values()}
    for item in lost:  # each lost item's row, with its reason
        row = next(line for line in body.splitlines() if line.startswith(f"| {titles[item]} |"))
        assert f"| 0/{POINTS[item]:g} | failed |" in row and BUGS["bare_sync"].reason in row


def test_without_the_bonus_every_required_point_is_still_green(released, tmp_path):
    source = (ROOT / "solutions" / "model.py").read_text().replace(
        "        chunks = iter(", "        raise NotImplementedError(\"TODO Part 6\")\n        chunks = iter(")
    (tmp_path / "model.py").write_text(source)
    result, _, status, _ = autograde(released, checkout(released, tmp_path / "student", tmp_path / "model.py"))
    bonus = sum(POINTS[b] for b in BONUS) * 2
    assert (result["score"], result["max-score"], status) == (result["max-score"] - bonus, result["max-score"],
                                                              "success")


def test_a_crashing_submission_is_a_published_zero_that_says_why(released, tmp_path):
    (tmp_path / "model.py").write_text((ROOT / "solutions" / "model.py").read_text() + "\n1 / 0\n")
    result, body, status, _ = autograde(released, checkout(released, tmp_path / "student", tmp_path / "model.py"))
    assert result["score"] == 0 and status == "failure"
    assert "ZeroDivisionError" in body and str(tmp_path) not in body and "/tmp/" not in body


def test_a_rigged_grader_in_the_checkout_changes_nothing(released, buggy, tmp_path):
    folder = checkout(released, tmp_path / "student", write("bare_sync", tmp_path))
    (folder / "grader" / "__init__.py").write_text(RIGGED_INIT)  # imported: the student writes the result
    for check in (folder / "grader" / "checks").glob("test_*.py"):
        check.write_text("def test_everything():\n    pass\n")
    (folder / "rubric.yaml").write_text((folder / "rubric.yaml").read_text().replace("points: 4,", "points: 400,"))
    (folder / "conftest.py").write_text(RIGGED_INIT)
    assert graded_alike(autograde(released, folder)) == graded_alike(buggy)


def graded_alike(published_):
    """What must not change between two runs on the same files: the result but its time, the status."""
    result, _, status, _ = published_
    return {k: v for k, v in result.items() if k != "datetime"}, status


def test_a_missing_model_or_a_link_is_a_reason_not_a_grade(released, tmp_path):
    folder = checkout(released, tmp_path / "student")
    (folder / "starter" / "model.py").unlink()
    (folder / "starter" / "model.py").symlink_to(ROOT / "solutions" / "model.py")
    result, body, status, _ = autograde(released, folder)
    assert result["score"] == 0 and status == "failure" and "no starter/model.py" in body
    assert "No timeline of a training step: cannot draw the timeline of model.py" in body  # no folder of ours
    assert "/tmp/" not in body and str(tmp_path) not in body


def test_no_grade_is_still_a_valid_result_that_says_why_and_publishes_nothing(tmp_path):
    outputs = tmp_path / "output"
    done = python_m("grader.classroom50", "--checkout", tmp_path, "--not-graded", "installing torch failed",
                    env={**IDENTITY, "GITHUB_OUTPUT": str(outputs)})
    assert done.returncode == 0, done.stderr
    assert invalid(json.loads((tmp_path / "result.json").read_text()), "ml-fall", "lab8") is None
    assert published(tmp_path, outputs.read_text(), "ml-fall", "lab8")[2] == "error"  # no Release replaces a grade
    assert "installing torch failed" in (tmp_path / "release-body.md").read_text()


def test_the_bundle_holds_no_answer_key_and_fits_the_runner(released):
    files = [p for p in released[1].rglob("*") if p.is_file()]
    assert not any(p.name == "answers.yaml" or "solution" in str(p) for p in files)
    key = rubric.load(ROOT / "rubric.yaml").answer_key.read_text()
    answers = [line.split(":", 1)[1].strip() for line in key.splitlines() if line.strip().startswith("answer:")]
    assert not any(key in p.read_text(errors="replace") for p in files) and len(answers) == 10
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz") as archive:
        archive.add(released[1], arcname="lab8")
    assert len(packed.getvalue()) < BUNDLE_MAX_BYTES


def test_half_points_and_the_bonus_are_whole_numbers_classroom50_accepts(tmp_path):
    """With the key (the TA's side), one wrong answer: 4.5 points are 9 units; the bonus fits."""
    answers = (ROOT / "solutions" / "answers.yaml").read_text().replace('  answer: "no"', "  answer: yes")
    (tmp_path / "answers.yaml").write_text(answers)
    _, graded = grade(tmp_path, *submitted(answers=tmp_path / "answers.yaml"))
    scores = report.classroom50(graded, rubric.load(ROOT / "rubric.yaml"))
    result = {"schema": "classroom50/result/v1", "classroom": "c", "assignment": "a", "submission": "submit/x",
              "commit": "u", "release": "u", "review": "u", **scores}
    assert invalid(result, "c", "a") is None
    assert shares(result)[QUESTIONS] == (9, 10) and scores["max-score"] == 2 * sum(POINTS.values())
    assert scores["score"] == 2 * graded["score"]
    huge = {**graded, "checks": [{**c, "status": "failed", "message": "x" * 50_000} for c in graded["checks"]]}
    assert len(report.classroom50_body(huge, scores)) <= BODY_LIMIT


def test_the_cli_says_what_is_missing_in_one_line(tmp_path):
    assert python_m("grader.classroom50", "--help").stdout.startswith("usage: python -m grader.classroom50")
    missing = python_m("grader.classroom50", "--checkout", tmp_path)
    assert missing.returncode == 2 and "CLASSROOM, ASSIGNMENT" in missing.stderr.splitlines()[-1]
    absent = python_m("grader.classroom50", "--checkout", tmp_path / "nope", env=IDENTITY)
    assert absent.returncode == 2 and absent.stderr.splitlines()[-1].endswith("nope is not a folder")
