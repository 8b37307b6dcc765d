"""Grading a class: one row per student with the right status, no points from abuse, and an
interrupted batch that resumes to the same grades."""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import types

import pytest
from corpus import BUGS, FULL, POINTS, ROOT, write
from helpers import fast_rubric, grade, python_m

from grader.batch import discover


def without_answers(bug):
    """The score of a corpus submission graded without an answers file."""
    return FULL - sum(POINTS[i] for i in {*BUGS[bug].loses, "questions.answers"})


# student -> (status, score)
CLASS = {
    "alice": ("graded", FULL),  # a GitHub Classroom download: starter/model.py and starter/answers.yaml
    "bob": ("no-submission", 0),  # an empty repository
    "bare_sync": ("graded", without_answers("bare_sync")),
    "endless_train": ("graded", without_answers("endless_train")),  # it costs train()'s checks, not the batch
    "exit_in_train": ("tamper-suspected", without_answers("exit_in_train")),
    "fakes_device": ("tamper-suspected", 0),
    "imports_solution": ("tamper-suspected", 0),
    "truncates_a_file": ("graded", 0),  # the grader's files stand for any file of ours: it cannot reach them
    "links_to_alice": ("invalid-submission", 0),  # model.py -> ../alice/starter/model.py
}
MAX = FULL - POINTS["part6.pipelined"]  # the bonus is extra credit


def make_class(folder):
    folder.mkdir()
    alice = folder / "alice" / "starter"
    alice.mkdir(parents=True)
    shutil.copy(ROOT / "solutions" / "model.py", alice / "model.py")
    shutil.copy(ROOT / "solutions" / "answers.yaml", alice / "answers.yaml")
    (alice.parent / "rubric.yaml").write_text("items: []\n")  # a student's own rubric is never read
    (folder / "bob").mkdir()
    for name in CLASS:
        if name in BUGS:
            write(name, folder)
    target = folder.parent / "ours.txt"
    target.write_text("the grader's\n")
    source = (ROOT / "solutions" / "model.py").read_text()
    truncates = f"import os\nos.truncate({str(target)!r}, 0)\ndevice0 = "
    (folder / "truncates_a_file.py").write_text(source.replace("device0 = ", truncates))
    (folder / "links_to_alice").mkdir()
    (folder / "links_to_alice" / "model.py").symlink_to(alice / "model.py")
    return folder


def batch(*args):
    return subprocess.Popen([sys.executable, "-m", "grader.batch", *map(str, args)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    return fast_rubric(tmp_path_factory.mktemp("rubric"), allow=BUGS["exit_in_train"].allow)


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory, fast):
    root = tmp_path_factory.mktemp("batch")
    students, out = make_class(root / "class"), root / "out"
    run = batch(students, "--out", out, "-j", 2, "--rubric", fast, "--gradescope")
    _, err = run.communicate(timeout=600)
    assert run.returncode == 0, err
    return students, out, err


def test_one_row_per_student_with_its_status_and_score(graded_class):
    _, out, _ = graded_class
    rows = list(csv.DictReader((out / "grades.csv").open()))
    assert [r["student"] for r in rows] == sorted(CLASS)
    assert {r["student"]: (r["status"], float(r["score"])) for r in rows} == CLASS
    assert all(r["max"] == f"{MAX:g}" and r["mode"] == "virtual" for r in rows)
    for r in rows:
        assert r["status"] == "graded" or r["reason"]
        assert (out / "feedback" / f"{r['student']}.md").read_text().startswith(f"# Grade for {r['student']}")


def test_student_code_cannot_write_our_files(graded_class):
    students, out, _ = graded_class
    assert (students.parent / "ours.txt").read_text() == "the grader's\n"
    message = json.loads((out / "results" / "truncates_a_file.json").read_text())["grade"]["checks"][0]["message"]
    assert "FileNotFoundError" in message or "PermissionError" in message


def test_a_link_to_a_classmates_file_is_not_graded_as_ones_own(graded_class):
    _, out, _ = graded_class
    result = json.loads((out / "results" / "links_to_alice.json").read_text())
    assert "symbolic link" in result["reason"] and result["grade"]["score"] == 0


def test_every_row_records_its_isolation(graded_class):
    _, out, _ = graded_class
    rows = list(csv.DictReader((out / "grades.csv").open()))
    from grader.sandbox.isolation import detect

    assert {r["isolation"] for r in rows} == {detect().kind}


def test_batch_grades_equal_a_single_run(graded_class, tmp_path, fast):
    students, out, _ = graded_class
    _, single = grade(tmp_path, "--submission", str(students / "bare_sync.py"),
                      "--answers", str(students / "bare_sync.yaml"), "--rubric", str(fast))
    result = json.loads((out / "results" / "bare_sync.json").read_text())
    assert result["grade"]["checks"] == single["checks"]


def test_gradescope_results_carry_the_same_points(graded_class):
    _, out, _ = graded_class
    for student, (_, score) in CLASS.items():
        results = json.loads((out / "gradescope" / f"{student}.json").read_text())
        assert results["score"] == sum(t["score"] for t in results["tests"]) == score
        assert results["max_score"] == sum(t["max_score"] for t in results["tests"]) == MAX
    results = json.loads((out / "gradescope" / "bare_sync.json").read_text())
    assert {t["number"] for t in results["tests"] if t["score"] < t["max_score"]} == {
        "part4.sync_covers_output_gpu", "questions.answers"}
    assert all("no starter/model.py" in t["output"]
               for t in json.loads((out / "gradescope" / "bob.json").read_text())["tests"])


def test_progress_line(graded_class):
    _, _, err = graded_class
    assert f"{len(CLASS)}/{len(CLASS)} graded" in err and "left" in err


def test_kill_9_midway_then_rerun_gives_the_same_grades(graded_class, tmp_path, fast):
    students, reference, _ = graded_class
    out = tmp_path / "out"
    run = batch(students, "--out", out, "-j", 1, "--rubric", fast)
    while len(list((out / "results").glob("*.json"))) < 2 if (out / "results").exists() else True:
        assert run.poll() is None, "the batch ended before it could be interrupted"
        time.sleep(0.05)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    kept = {p: p.stat().st_mtime_ns for p in (out / "results").glob("*.json")}
    assert len(kept) < len(CLASS)
    rerun = batch(students, "--out", out, "-j", 2, "--rubric", fast)
    rerun.communicate(timeout=600)
    assert (out / "grades.csv").read_text() == (reference / "grades.csv").read_text()
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # finished students are not graded again


def test_a_rerun_that_keeps_every_student_still_writes_the_gradebook(graded_class, tmp_path, fast):
    students, graded, _ = graded_class
    out = tmp_path / "out"
    shutil.copytree(graded, out)
    (out / "grades.csv").unlink()
    rerun = batch(students, "--out", out, "-j", 2, "--rubric", fast, "--gradescope")
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0 and f"kept {len(CLASS)}, regrading 0, adding 0" in err, err
    assert (out / "grades.csv").read_text() == (graded / "grades.csv").read_text()


def test_the_gradebook_is_rebuilt_every_few_seconds_and_never_for_more_than_a_twentieth_of_the_time(monkeypatch):
    """Each rebuild reads the whole class: for a large one, the interval grows with its cost."""
    from grader import batch as batches

    clock, cost = [100.0], [0.0]
    monkeypatch.setattr(batches, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    monkeypatch.setattr(batches.gradebook, "publish", lambda *args: clock.__setitem__(0, clock[0] + cost[0]))
    graded = types.SimpleNamespace(out=None, rubric_ids=[], roster=None)
    for cost[0], due in ((0.01, batches.PUBLISH_EVERY), (1.0, 20.0)):
        batches.Batch.publish(graded)
        assert graded.publish_at == pytest.approx(clock[0] + due)


def test_a_worker_imports_none_of_pytests_plugins_afresh():
    """The batch imports them once, before it forks any worker (each would pay for them again)."""
    missing = subprocess.run([sys.executable, "-c", "import sys, grader.batch\n"
                              "from _pytest.config import default_plugins\n"
                              "print([p for p in default_plugins if '_pytest.' + p not in sys.modules])"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    assert missing == "[]"


def test_changed_grader_files_are_restored_and_named(tmp_path):
    from grader.batch import Pristine

    kept, gone, package = tmp_path / "rubric.yaml", tmp_path / "conftest.py", tmp_path / "checks"
    kept.write_text("items: [a]\n")
    gone.write_text("pytest_plugins = []\n")
    (package / "__pycache__").mkdir(parents=True)
    pristine = Pristine([kept, gone, package])
    assert pristine.restore() == []
    kept.write_text("items: []\n")
    gone.unlink()
    planted = package / "__pycache__" / "test_part1.cpython-311.pyc"
    planted.write_bytes(b"planted bytecode")
    assert pristine.restore() == ["conftest.py", "rubric.yaml", "test_part1.cpython-311.pyc"]
    assert kept.read_text() == "items: [a]\n" and gone.read_text() == "pytest_plugins = []\n"
    assert not planted.exists()


SABOTAGE = """
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            fd = os.open("/dev/shm/left-behind", os.O_CREAT | os.O_WRONLY)
            os.write(fd, b"x" * 4096)
            for _ in range(600):  # kill every process it can see, for a minute
                try:
                    os.kill(-1, 9)
                except OSError:
                    pass
                time.sleep(0.1)
        os._exit(0)
    for _ in range(20):
        print("y" * (1 << 20))
"""
BOMB = 'a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x"]\n' + "".join(
    f'{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n' for p, c in zip("abcdefgh", "bcdefghi"))


@pytest.fixture(scope="module")
def hostile_class(tmp_path_factory, fast):
    """Two honest students beside one who attacks everything it can reach, and two whose answers
    file is hostile."""
    folder = tmp_path_factory.mktemp("hostile") / "class"
    folder.mkdir()
    source = (ROOT / "solutions" / "model.py").read_text()
    for name in ("alice", "carol", "bomb", "zero"):
        (folder / f"{name}.py").write_text(source)
    for name in ("alice", "carol", "saboteur"):
        shutil.copy(ROOT / "solutions" / "answers.yaml", folder / f"{name}.yaml")
    (folder / "saboteur.py").write_text("import os\n" + source.replace(
        "def train(model, x, y, steps=5, lr=0.01):\n", "def train(model, x, y, steps=5, lr=0.01):\n" + SABOTAGE))
    (folder / "bomb.yaml").write_text(BOMB)
    (folder / "zero.yaml").symlink_to("/dev/zero")
    out = folder.parent / "out"
    run = batch(folder, "--out", out, "-j", 2, "--rubric", fast)
    _, err = run.communicate(timeout=600)
    assert run.returncode == 0, err
    return {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}, out


def test_a_saboteur_changes_nothing_for_classmates(hostile_class):
    rows, _ = hostile_class
    for name in ("alice", "carol"):
        assert (rows[name]["status"], float(rows[name]["score"])) == ("graded", FULL), rows[name]


def test_nothing_a_submission_started_outlives_the_batch(hostile_class):
    _, out = hostile_class
    assert not os.path.exists("/dev/shm/left-behind")
    if os.geteuid() == 0:  # the students' uids: no process of theirs is left
        from grader.procs import live
        from grader.sandbox.isolation import UID_BASE, UID_COUNT

        assert [p for p in live() if UID_BASE <= p.uid < UID_BASE + UID_COUNT] == []
    assert (out / "logs" / "saboteur.log").stat().st_size < 2 * 2**20  # 20 MB printed, capped


def test_hostile_answer_files_cost_the_questions_only(hostile_class):
    rows, out = hostile_class
    for name, words in (("bomb", "YAML alias"), ("zero", "symbolic link")):
        assert (rows[name]["status"], float(rows[name]["score"])) == ("graded", FULL - POINTS["questions.answers"])
        message = json.loads((out / "results" / f"{name}.json").read_text())["grade"]["checks"]
        assert words in next(c["message"] for c in message if c["id"] == "questions.answers")


def test_a_batch_without_isolation_refuses_to_start(tmp_path):
    run = python_m("grader.batch", ROOT / "tests" / "submissions", "--out", tmp_path / "out", "--isolation", "none")
    assert run.returncode == 2 and "needs bubblewrap" in run.stderr and "--no-isolation" in run.stderr


def test_a_linked_answers_file_is_not_a_second_student(tmp_path):
    """zero.py beside zero.yaml -> /dev/zero is one student, zero, whose answers are a link; a
    linked folder or .py is still a student, with nothing readable to grade."""
    (tmp_path / "zero.py").write_text("x = 1\n")
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    (tmp_path / "linked").symlink_to(tmp_path)
    assert [(s.name, s.model.name, s.answers.name) for s in discover(tmp_path)] == [
        ("linked", "linked", "linked.yaml"), ("zero", "zero.py", "zero.yaml")]
