"""`python -m grader.batch SUBMISSIONS --out DIR [-j N]`: grade a whole class with the pristine grader.

SUBMISSIONS holds one folder per student (a GitHub Classroom download: `starter/model.py` and
`starter/answers.yaml`, or both at the top) or one `NAME.py` per student (answers: `NAME.yaml`).
Every student is graded by `pytest grader/` in a worker forked from this process, which imported
torch and the whole grader before any student code existed: no worker starts torch afresh, and
none can see another student's state. DIR receives, as each student finishes and atomically:
results/NAME.json, feedback/NAME.md, grades.csv and grades.json. Rerunning the same command after
an interruption grades only the students without a result.
"""
import argparse
import csv
import dataclasses
import io
import json
import os
import pathlib
import re
import shutil
import signal
import sys
import tempfile
import time

import pytest
import pytest_timeout  # noqa: F401 - the one plugin workers load
import torch._dynamo  # noqa: F401 - every optimizer step needs it: import it once, here

import grader.checks.test_part1  # noqa: F401 - the pristine grader, in memory before any student code
import grader.checks.test_part2  # noqa: F401
import grader.checks.test_part3  # noqa: F401
import grader.checks.test_part4  # noqa: F401
import grader.checks.test_questions  # noqa: F401
import grader.conftest  # noqa: F401
from grader import report, sandbox
from grader import rubric as rubrics
from grader.devices import choose_mode
from grader.guard import TAMPER

ROOT = pathlib.Path(__file__).resolve().parent.parent
STATUSES = ("graded", "timeout", "crashed", "no-submission", "tamper-suspected")


@dataclasses.dataclass(frozen=True)
class Student:
    name: str
    model: pathlib.Path | None
    answers: pathlib.Path | None


def discover(folder):
    """The students of a submissions folder, by name."""
    students = []
    for entry in sorted(pathlib.Path(folder).iterdir()):
        if entry.is_dir():
            model = next((p for p in (entry / "starter" / "model.py", entry / "model.py") if p.is_file()), None)
            students.append(Student(entry.name, model, model.with_name("answers.yaml") if model else None))
        elif entry.suffix == ".py":
            students.append(Student(entry.stem, entry, entry.with_suffix(".yaml")))
    return students


class Batch:
    def __init__(self, out, mode, jobs, seconds, gradescope, rubric_path):
        self.out = pathlib.Path(out)
        self.mode, self.jobs, self.seconds, self.gradescope = mode, jobs, seconds, gradescope
        for sub in ("results", "feedback", "logs") + (("gradescope",) if gradescope else ()):
            (self.out / sub).mkdir(parents=True, exist_ok=True)
        # The rubric and key the workers read: a private copy, checked after every student.
        self.private = pathlib.Path(tempfile.mkdtemp(prefix="grader-rubric-"))
        self.rubric = rubric = rubrics.load(rubric_path)
        self.rubric_ids = list(rubric.items)
        key_line = re.compile(r"^answer_key:.*$", re.M)
        if rubric.answer_key.exists():
            shutil.copy(rubric.answer_key, self.private / "answers.yaml")
        (self.private / "rubric.yaml").write_text(key_line.sub("answer_key: answers.yaml", rubric.path.read_text()))
        self.pristine = Pristine([*ROOT.joinpath("grader").rglob("*.py"), ROOT / "conftest.py",
                                  *self.private.iterdir()])

    def run(self, students):
        done = {s.name for s in students if (self.out / "results" / f"{s.name}.json").exists()}
        pending = [s for s in students if s.name not in done]
        running, started = {}, time.monotonic()
        progress = Progress(len(students), len(done))
        while pending or running:
            while pending and len(running) < self.jobs:
                student = pending.pop(0)
                if student.model is None:
                    self.record(student, 0.0, "no-submission", "no starter/model.py or model.py in the submission")
                    progress.tick()
                else:
                    worker = Worker(student, self)
                    running[worker.pid] = worker
            for worker in [w for w in running.values() if w.finished() or w.overdue()]:
                del running[worker.pid]
                self.record(worker.student, worker.seconds(), *worker.verdict(self.pristine.restore()))
                progress.tick()
            time.sleep(0.02)
        progress.close(time.monotonic() - started)
        shutil.rmtree(self.private, ignore_errors=True)

    def record(self, student, seconds, status, reason, graded=None):
        result = {"student": student.name, "status": status, "reason": reason,
                  "grade": graded or self.empty_grade(reason)}
        if self.gradescope:
            results = report.gradescope(result["grade"], seconds)
            _write_atomically(self.out / "gradescope" / f"{student.name}.json", json.dumps(results, indent=2) + "\n")
        _write_atomically(self.out / "feedback" / f"{student.name}.md", feedback(result))
        # Last: a student with a result counts as done, so everything else must already be there.
        _write_atomically(self.out / "results" / f"{student.name}.json", json.dumps(result, indent=2) + "\n")
        self.publish()

    def empty_grade(self, reason):
        """The grade of a submission that could not be graded: every item lost, for `reason`."""
        results = {item_id: report.Result("failed", reason) for item_id in self.rubric.items}
        return report.grade(self.rubric, results, self.mode, "")

    def publish(self):
        """grades.csv and grades.json from every result so far, each replaced in one step."""
        results = [json.loads(p.read_text()) for p in sorted((self.out / "results").glob("*.json"))]
        rows = io.StringIO()
        writer = csv.writer(rows, lineterminator="\n")
        writer.writerow(["student", "score", "max", *self.rubric_ids, "mode", "status", "reason"])
        for r in results:
            grade = r["grade"]
            points = {c["id"]: "" if c["status"] == "not_graded" else f"{c['points']:g}" for c in grade["checks"]}
            writer.writerow([r["student"], f"{grade['score']:g}", f"{grade['max_score']:g}",
                             *(points[i] for i in self.rubric_ids), grade["mode"], r["status"], r["reason"]])
        _write_atomically(self.out / "grades.csv", rows.getvalue())
        _write_atomically(self.out / "grades.json", json.dumps(results, indent=2) + "\n")


class Worker:
    """`pytest grader/` on one submission, in its own session, forked from the pristine batch."""

    def __init__(self, student, batch):
        self.student, self.batch = student, batch
        self.grade_json = batch.private / f"{student.name}.{os.getpid()}.json"
        self.deadline = time.monotonic() + batch.seconds
        args = [str(ROOT / "grader"), "-q", "-p", "pytest_timeout", "-p", "no:cacheprovider",
                *(["--run-as", "nobody"] if os.geteuid() == 0 else []),  # then it can write none of our files
                "--submission", str(student.model),
                "--answers", str(student.answers), "--grade-json", str(self.grade_json),
                "--grader-mode", batch.mode, "--rubric", str(batch.private / "rubric.yaml")]
        self.started = time.monotonic()
        self.pid = os.fork()
        if self.pid == 0:
            _become_worker(batch.out / "logs" / f"{student.name}.log")
            os._exit(int(pytest.main(args)))
        self.status = None

    def seconds(self):
        return time.monotonic() - self.started

    def finished(self):
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid:
            self.status = status
        return bool(pid)

    def overdue(self):
        if time.monotonic() < self.deadline:
            return False
        _kill_session(self.pid)
        os.waitpid(self.pid, 0)
        return True

    def verdict(self, tampered_files):
        """(status, reason, grade) for the student."""
        _kill_session(self.pid)  # whatever the submission left running
        log = f"logs/{self.student.name}.log"
        if self.status is None:
            return "timeout", f"grading did not finish within {self.batch.seconds:g} s", None
        try:
            graded = json.loads(self.grade_json.read_text())
        except (OSError, ValueError):
            return "crashed", f"the grader ended ({_describe(self.status)}) without a grade; see {log}", None
        finally:
            self.grade_json.unlink(missing_ok=True)
        if tampered_files:
            return "tamper-suspected", f"the grader's files changed during grading: {', '.join(tampered_files)}", graded
        tampering = [c["message"] for c in graded["checks"] if TAMPER in c["message"]]
        if tampering:
            return "tamper-suspected", tampering[0], graded
        return "graded", "", graded


class Pristine:
    """The grader's files as the batch started; `restore()` puts back, and names, any that changed."""

    def __init__(self, paths):
        self.saved = {path: path.read_bytes() for path in paths}

    def restore(self):
        changed = []
        for path, data in self.saved.items():
            try:
                same = path.read_bytes() == data
            except OSError:
                same = False
            if not same:
                changed.append(str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name))
                path.write_bytes(data)
        return changed


class Progress:
    def __init__(self, total, done):
        self.total, self.done, self.started, self.first = total, done, time.monotonic(), done

    def tick(self):
        self.done += 1
        graded_now = self.done - self.first
        each = (time.monotonic() - self.started) / graded_now
        sys.stderr.write(f"\r{self.done}/{self.total} graded, {each:.2f} s each, "
                         f"about {each * (self.total - self.done):.0f} s left   ")
        sys.stderr.flush()

    def close(self, seconds):
        sys.stderr.write(f"\r{self.done}/{self.total} graded in {seconds:.1f} s{' ' * 30}\n")


def feedback(result):
    """The markdown a student receives: status, then the table `pytest grader/` shows."""
    lines = [f"# Grade for {result['student']}", "", f"Status: **{result['status']}**"]
    if result["reason"]:
        lines.append(f"Reason: {result['reason']}")
    lines += ["", "```", *report.table(result["grade"]), "```"]
    return "\n".join(lines) + "\n"


def _become_worker(log):
    os.setsid()  # the batch ends the whole session, and whatever the submission left in it
    sandbox.die_with_parent()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    for name in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS"):  # the grader's options are the batch's alone
        os.environ.pop(name, None)
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # and its plugins: pytest-timeout, named below


def _kill_session(sid):
    """SIGKILL every process of session `sid` (Linux /proc), the worker's probes included."""
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # field 6 of stat, the session id
            try:
                os.kill(int(stat.parent.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


def _describe(status):
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.WEXITSTATUS(status)}"


def _write_atomically(path, text):
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m grader.batch", description=__doc__.splitlines()[0])
    parser.add_argument("submissions", type=pathlib.Path)
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--grader-mode", choices=("auto", "real", "virtual"), default="auto")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per submission")
    parser.add_argument("--gradescope", action="store_true", help="also write gradescope/NAME.json")
    parser.add_argument("--rubric", type=pathlib.Path, default=ROOT / "rubric.yaml")
    args = parser.parse_args(argv)
    try:
        mode, _ = choose_mode(args.grader_mode)
    except ValueError as error:
        parser.error(str(error))
    jobs = 1 if mode == "real" else max(1, args.jobs)  # timings on shared GPUs would disturb each other
    try:
        # Probes run in parallel in virtual mode, one after another in real mode.
        seconds = args.timeout or 4 * rubrics.load(args.rubric).seconds_per_function + 30
    except rubrics.RubricError as error:
        parser.error(f"invalid rubric: {error}")
    students = discover(args.submissions)
    print(f"grading {len(students)} submissions in {mode} mode, {jobs} at a time", file=sys.stderr)
    Batch(args.out, mode, jobs, seconds, args.gradescope, args.rubric).run(students)
    return 0


if __name__ == "__main__":
    sys.exit(main())
