"""`python -m grader.batch SUBMISSIONS --out DIR [-j N]`: grade a whole class with the pristine grader.

SUBMISSIONS holds one folder per student (a GitHub Classroom download: `starter/model.py` and
`starter/answers.yaml`, or both at the top) or one `NAME.py` per student (answers: `NAME.yaml`).
Each worker slot has one sandboxed zygote (grader.runner, started before any student is read,
so it never holds a secret or another student's work) that runs student code as the slot's own
identity; each student is judged by `pytest grader/` in a worker forked from this process, which
runs no student code. After each student every process it left is killed. DIR receives, each
file written atomically, results/NAME.json and feedback/NAME.md as each student finishes, and
grades.csv, grades.json and the class view rebuilt from every result as students finish, at most
every five seconds and never for more than a twentieth of the batch's time (each rebuild reads the
whole class), and once more when the batch ends. A rerun
into the same DIR grades exactly the students whose result is missing or stale: their files
changed, or the grader did (its code, the rubric, the answer key), and says how many it kept,
regraded and added.

`python -m grader.batch merge OUT_1 ... OUT_N --out DIR` joins the gradebooks of a class graded in
shards (`--shard K/N`, one per machine) into the one a single batch would have written.
`python -m grader.batch export DIR --canvas GRADEBOOK.csv --column NAME` (or `--moodle`) writes the
grades in a file the course's LMS imports.
"""
import argparse
import dataclasses
import hashlib
import json
import os
import pathlib
import shutil
import signal
import stat
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # nothing written into the grader's folders during a batch

import pytest
import pytest_timeout  # noqa: F401 - the one plugin workers load
from _pytest.config import default_plugins

import grader.conftest  # the pristine grader, in memory before any student is read
from grader import ROOT, gradebook, lms, procs, reference, report, rows
from grader import rubric as rubrics
from grader.contract import MODE_CHOICES, MODE_HELP, TAMPER, probe_seconds
from grader.facts import GRADING
from grader.sandbox import files
from grader.sandbox import isolation as isolations
from grader.sandbox import runner as runners

for _check in sorted((pathlib.Path(grader.conftest.__file__).parent / "checks").glob("test_*.py")):
    __import__(f"grader.checks.{_check.stem}")  # every check module, whatever parts exist
# pytest's own plugins, and what they and the grader's fixtures import as a run starts: imported once
# here, not afresh by every worker forked from this process (14 ms a student, measured)
for _module in [f"_pytest.{name}" for name in default_plugins] + [
        "_pytest._argcomplete", "pdb", "faulthandler", "tomllib" if sys.version_info >= (3, 11) else "tomli",
        "grader.fixture"]:
    __import__(_module)

WAKE = 0.5  # seconds between looks at the workers' deadlines (a worker's end wakes the batch at once)
PUBLISH_EVERY = 5.0  # seconds between rebuilds of the gradebook's files while a batch runs, at least
PUBLISH_SHARE = 20  # and at least this many times the last rebuild's own time (each reads the whole class)
NO_ISOLATION = ("a batch runs untrusted code: it needs bubblewrap (apt-get install bubblewrap, with unprivileged "
                "user namespaces) or root (each slot gets a uid of its own); --no-isolation grades without either, "
                "and records so in every row")


@dataclasses.dataclass(frozen=True)
class Student:
    name: str
    folder: pathlib.Path  # what the student submitted: their folder, or the batch folder for NAME.py
    model: pathlib.Path | None
    answers: pathlib.Path | None


def discover(folder):
    """The students of a submissions folder, by name. Links are never followed: a folder or file
    that is a link is still a student, with nothing readable to grade."""
    students = []
    for entry in sorted(pathlib.Path(folder).iterdir()):
        if entry.is_dir() and not entry.is_symlink():
            model = next((p for p in (entry / "starter" / "model.py", entry / "model.py")
                          if p.is_file() or p.is_symlink()), None)
            students.append(Student(entry.name, entry, model, model.with_name("answers.yaml") if model else None))
        elif entry.suffix == ".py" or (entry.is_symlink() and entry.suffix != ".yaml"):  # NAME.yaml: answers
            students.append(Student(entry.stem, entry.parent, entry, entry.with_suffix(".yaml")))
    return students


class Batch:
    def __init__(self, out, mode, jobs, timeout, gradescope, rubric_path, isolation, submissions, roster=None):
        """`mode`: as --grader-mode takes it (ValueError when it cannot be had); `jobs`: slots side
        by side in virtual mode (real mode grades one at a time); `timeout`: seconds a submission
        may take, or None for the probes' own limits and the checks' backstop."""
        self.out, self.roster, self.publish_at = pathlib.Path(out), roster, 0.0
        self.gradescope, self.isolation = gradescope, isolation
        for sub in ("", "results", "feedback", "logs") + (("gradescope",) if gradescope else ()):
            (self.out / sub).mkdir(parents=True, exist_ok=True)
        # The rubric and key the workers read: a private copy, checked after every student.
        self.private = pathlib.Path(tempfile.mkdtemp(prefix="grader-rubric-"))
        self.grades = pathlib.Path(tempfile.mkdtemp(prefix="grader-grades-"))  # each worker's grade JSON
        self.rubric = rubric = rubrics.load(rubric_path)
        self.rubric_ids = list(rubric.items)
        self.grader = gradebook.grader_hash(rubric)
        if rubric.answer_key.exists():  # else the workers' key is missing too: the item is not graded
            shutil.copy(rubric.answer_key, self.private / "answers.yaml")
        shutil.copy(rubric.path, self.private / "rubric.yaml")
        secrets = [rubric.answer_key, *isolations.SECRETS, pathlib.Path(submissions), self.out, self.private,
                   self.grades]
        for path in secrets:
            _close_to_others(path)
        self.pristine = Pristine([ROOT / "grader", ROOT / "conftest.py", self.private])
        limits = runners.Limits(rubric.seconds_per_function, rubric.memory_bytes)
        self.cores = max(1, procs.usable_cores() // jobs)  # each slot's share: its probes side by side
        self.runners = []
        for _ in range(jobs):  # the first slot's sandbox computes the facts every grading shares, for all
            self.runners.append(runners.Runner(isolation, rubric.allowed_imports, hidden=secrets, long_lived=True,
                                               limits=limits, cores=self.cores,
                                               shared_from=self.runners[0] if self.runners else None).start())
        reference.warm(diagnoses=True)  # once for every worker, while the zygotes import torch
        try:
            self.mode, _ = self.runners[0].mode(mode)
        except ValueError:
            self.close()
            raise
        if self.mode == "real":  # timings on shared GPUs would disturb each other
            for runner in self.runners[1:]:
                runner.close()
            del self.runners[1:]
        self.jobs = len(self.runners)
        for runner in self.runners:  # started side by side; ready before any worker is forked
            runner.ready()
        self.seconds = timeout or probe_seconds(rubric.seconds_per_function, self.mode, GRADING, self.cores) + \
            grader.conftest.BACKSTOP

    def run(self, students, force=False, only=None):
        plan = gradebook.plan(students, self.out, self.grader, force, only)
        print(f"{plan.describe()} (grader {self.grader})", file=sys.stderr)
        pending = list(plan.grade)
        running, started = {}, time.monotonic()
        free = list(range(self.jobs))
        progress = Progress(len(students), plan.kept)
        try:
            while pending or running:
                while pending and free:
                    student = pending.pop(0)
                    problem = _unreadable(student)
                    if problem is not None:
                        self.record(student, 0.0, *problem)
                        progress.tick()
                        continue
                    worker = Worker(student, self, free.pop(0))
                    running[worker.pid] = worker
                ended = [w for w in running.values() if w.finished() or w.overdue()]
                for worker in ended:
                    del running[worker.pid]
                    worker.close()
                    cleaned = self.clean(worker.slot)
                    self.record(worker.student, worker.seconds(), *worker.verdict(self.pristine.restore(), cleaned))
                    free.append(worker.slot)
                    progress.tick()
                if not ended:  # (a slot just freed takes the next student first)
                    procs.wait_for_exits([w.exited for w in running.values()], WAKE)
        finally:
            self.close()
        self.publish()  # every result in, whatever was rebuilt on the way
        progress.close(time.monotonic() - started)

    def close(self):
        for runner in self.runners:
            runner.close()
        shutil.rmtree(self.private, ignore_errors=True)
        shutil.rmtree(self.grades, ignore_errors=True)

    def clean(self, slot):
        """After a student: every process it left is killed; a zygote that cannot say so is replaced.
        Returns whether the slot's sandbox survived the student."""
        runner = self.runners[slot]
        try:
            runner.clean()
            return True
        except runners.RunnerLost:
            runner.close()
            fresh = runners.Runner(runner.isolation, runner.allowed, runner.hidden, long_lived=True,
                                   limits=runner.limits, cores=runner.cores, shared_from=runner.shared_from or runner)
            self.runners[slot] = fresh.start()
            self.runners[slot].ready()
            return False

    def record(self, student, seconds, status, reason, graded=None):
        result = {"student": student.name, "status": status, "reason": reason,
                  "grade": graded or self.empty_grade(reason), "grader": self.grader,
                  "submission": gradebook.submission_hash(student)}
        if self.gradescope:
            results = report.gradescope(result["grade"], seconds)
            text = json.dumps(results, indent=2) + "\n"
            gradebook.write_atomically(self.out / "gradescope" / f"{student.name}.json", text)
        gradebook.write_atomically(self.out / "feedback" / f"{student.name}.md", feedback(result))
        # Last: a student with a result counts as done, so everything else must already be there.
        text = json.dumps(result, indent=2) + "\n"
        gradebook.write_atomically(self.out / "results" / f"{student.name}.json", text)
        if time.monotonic() >= self.publish_at:
            self.publish()

    def empty_grade(self, reason):
        """The grade of a submission that could not be graded: every item lost, for `reason`."""
        results = {item_id: report.Result("failed", reason) for item_id in self.rubric.items}
        return report.grade(self.rubric, results, self.mode, "", self.isolation.kind)

    def publish(self):
        started = time.monotonic()
        gradebook.publish(self.out, self.rubric_ids, self.roster)
        done = time.monotonic()
        self.publish_at = done + max(PUBLISH_EVERY, PUBLISH_SHARE * (done - started))


def _unreadable(student):
    """(status, reason) for a student whose model.py cannot be graded at all, else None."""
    if student.model is None:
        return "no-submission", "no starter/model.py or model.py in the submission"
    try:
        files.read_text(student.model, files.MODEL_CAP, "model.py", student.folder)
    except files.InvalidFile as error:
        return ("no-submission" if error.missing else "invalid-submission"), str(error)
    return None


def _close_to_others(path):
    """Secrets and results are readable and writable by their owner only: a student's uid (uid
    isolation, no namespaces to hide them) can reach none of them."""
    try:
        mode = path.stat().st_mode
        os.chmod(path, stat.S_IMODE(mode) & ~0o007)
    except OSError:
        pass


class Worker:
    """`pytest grader/` on one submission, forked from the pristine batch; it judges what the
    slot's sandbox reports and runs no student code itself."""

    def __init__(self, student, batch, slot):
        self.student, self.batch, self.slot = student, batch, slot
        self.grade_json = batch.grades / f"{student.name}.json"
        self.deadline = time.monotonic() + batch.seconds
        args = [str(ROOT / "grader"), "-q", "-p", "pytest_timeout", "-p", "no:cacheprovider",
                "-W", "ignore::pytest.PytestAssertRewriteWarning",  # pytest_timeout is preloaded, on purpose
                "--submission", str(student.model), "--submission-root", str(student.folder),
                "--answers", str(student.answers), "--grade-json", str(self.grade_json),
                "--grader-mode", batch.mode, "--isolation", batch.isolation.kind,
                "--rubric", str(batch.private / "rubric.yaml"), "--answer-key", str(batch.private / "answers.yaml")]
        self.started = time.monotonic()
        self.pid = os.fork()
        if self.pid == 0:
            runners.ATTACHED = batch.runners[slot]
            _become_worker(batch.out / "logs" / f"{student.name}.log")
            os._exit(int(pytest.main(args)))
        self.status, self.exited = None, procs.exit_fd(self.pid)

    def close(self):
        if self.exited is not None:
            os.close(self.exited)

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
        _kill(self.pid)
        os.waitpid(self.pid, 0)
        return True

    def verdict(self, tampered_files, sandbox_survived):
        """(status, reason, grade) for the student."""
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
        tampering = sorted(c["message"] for c in graded["checks"] if TAMPER in c["message"])
        if tampering:
            return "tamper-suspected", tampering[0], graded
        if not sandbox_survived:
            return "tamper-suspected", "the sandbox did not survive this submission (its processes were ended)", graded
        return "graded", "", graded


class Pristine:
    """The grader's files as the batch started, bytecode included; `restore()` puts back, deletes
    what was added, and names what changed."""

    def __init__(self, paths):
        self.paths = [pathlib.Path(p) for p in paths]
        self.saved = dict(self._files())

    def _files(self):
        for path in self.paths:
            for file in ([path] if not path.is_dir() else sorted(p for p in path.rglob("*") if not p.is_dir())):
                try:
                    yield file, file.read_bytes() if not file.is_symlink() else None
                except OSError:
                    yield file, None

    def restore(self):
        changed = []
        now = dict(self._files())
        for path in now.keys() - self.saved.keys():  # added (a planted .pyc, say)
            changed.append(_shown(path))
            path.unlink(missing_ok=True)
        for path, data in self.saved.items():
            if now.get(path, b"\0missing") != data:
                changed.append(_shown(path))
                path.unlink(missing_ok=True)
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        return sorted(changed)


def _shown(path):
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name)


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
    os.setsid()
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    for name in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS"):  # the grader's options are the batch's alone
        os.environ.pop(name, None)
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"  # and its plugins: pytest-timeout, named below


def _kill(pid):
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _describe(status):
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit status {os.WEXITSTATUS(status)}"


def _shard(text):
    """K/N -> (K, N), 1 <= K <= N."""
    try:
        k, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not K/N (for example 2/5)") from None
    if not 1 <= k <= n:
        raise argparse.ArgumentTypeError(f"{text!r}: K must be between 1 and N")
    return k, n


def in_shard(name, shard):
    """Whether student `name` belongs to shard K of N: by a hash of the name alone, so that each
    student's shard stays the same whoever else is in the class."""
    k, n = shard
    return int(hashlib.sha256(name.encode()).hexdigest(), 16) % n == k - 1


def _roster(parser, path):
    try:
        return gradebook.Roster(path) if path else None
    except gradebook.GradebookError as error:
        parser.error(str(error))


def merge_main(argv):
    parser = argparse.ArgumentParser(prog="python -m grader.batch merge",
                                     description="join the gradebooks of a class graded in shards into one "
                                                 "(grades.csv, grades.json, class.json, report.html)")
    parser.add_argument("shards", type=pathlib.Path, nargs="+", help="the --out folders of the shards")
    parser.add_argument("--out", type=pathlib.Path, required=True, help="the folder for the joined gradebook")
    parser.add_argument("--roster", type=pathlib.Path, help=ROSTER_HELP)
    args = parser.parse_args(argv)
    try:
        count = gradebook.merge(args.shards, args.out, _roster(parser, args.roster))
    except gradebook.GradebookError as error:
        parser.error(str(error))
    print(f"{count} students from {len(args.shards)} shards in {args.out}", file=sys.stderr)
    return 0


def export_main(argv):
    parser = argparse.ArgumentParser(
        prog="python -m grader.batch export",
        description="write a gradebook's grades in a file the LMS imports: the lab's column of a Canvas gradebook "
                    "export filled in, or Moodle's grade-import CSV. Students without a grade are left empty "
                    "(never zero) and listed.")
    parser.add_argument("gradebook", type=pathlib.Path, metavar="DIR", help="a batch's --out folder (grades.csv)")
    lms_choice = parser.add_mutually_exclusive_group(required=True)
    lms_choice.add_argument("--canvas", type=pathlib.Path, metavar="GRADEBOOK.csv",
                            help="Canvas's gradebook export (Grades > Export); its other columns and rows are kept")
    lms_choice.add_argument("--moodle", action="store_true", help="Moodle's grade import: identifier, grade")
    parser.add_argument("--column", help="the lab's column: Canvas's assignment (with or without its ' (id)'), "
                                         "or the name of Moodle's grade column (default: grade)")
    parser.add_argument("--bonus", action=argparse.BooleanOptionalAction, default=True,
                        help="count the bonus items' points, as the rubric does (extra credit in the score)")
    parser.add_argument("--to", type=pathlib.Path, metavar="FILE",
                        help="where to write (default: DIR/canvas.csv or DIR/moodle.csv)")
    args = parser.parse_args(argv)
    if args.canvas and not args.column:
        parser.error("--canvas needs --column NAME, the lab's assignment column")
    try:
        table = rows.read(args.gradebook)
    except (OSError, ValueError, KeyError):
        parser.error(f"{args.gradebook} is not a batch's gradebook (no readable grades.csv and grades.json)")
    try:
        made = (lms.canvas(table, args.canvas, args.column, args.bonus) if args.canvas
                else lms.moodle(table, args.column or "grade", args.bonus))
        target = args.to or args.gradebook / ("canvas.csv" if args.canvas else "moodle.csv")
        gradebook.write_atomically(target, made.text)
    except lms.ExportError as error:
        parser.error(str(error))
    except OSError as error:
        parser.error(f"cannot write {target}: {error.strerror}")
    print(f"{target}: {made.filled} grades{'' if args.bonus else ' (bonus not counted)'}")
    for title, names in (("left empty, no grade", made.empty), ("in the gradebook, not in this file", made.unmatched)):
        if names:
            print(f"{len(names)} {title}:", *(f"  {name}" for name in names), sep="\n")
    return 0


ROSTER_HELP = ("GitHub Classroom's roster CSV (identifier, github_username): each row of grades.csv gets the "
               "student's identifier, and roster students without a submission get a row")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["merge"]:
        return merge_main(argv[1:])
    if argv[:1] == ["export"]:
        return export_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m grader.batch", description=__doc__.split("\n\n")[0],
                                     epilog="python -m grader.batch merge --help: joining shards; "
                                            "python -m grader.batch export --help: grades into Canvas or Moodle")
    parser.add_argument("submissions", type=pathlib.Path, help="one folder per student, or NAME.py + NAME.yaml")
    parser.add_argument("--out", type=pathlib.Path, required=True, help="where grades, feedback and logs go")
    parser.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1,
                        help="submissions graded side by side (virtual mode; real mode grades one at a time)")
    parser.add_argument("--grader-mode", choices=MODE_CHOICES, default="auto", help=MODE_HELP)
    parser.add_argument("--isolation", choices=isolations.KINDS, default="auto",
                        help="how student code is isolated (see README, 'Threat model'); auto: the strongest here")
    parser.add_argument("--no-isolation", action="store_true", help="grade even where no isolation is available")
    parser.add_argument("--uid-base", type=int, default=isolations.UID_BASE,
                        help=f"as root, student code runs as uids claimed from UID_BASE to UID_BASE + "
                             f"{isolations.UID_COUNT - 1}, one per slot and never shared with another run")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per submission")
    parser.add_argument("--gradescope", action="store_true", help="also write gradescope/NAME.json")
    parser.add_argument("--rubric", type=pathlib.Path, default=ROOT / "rubric.yaml", help="the rubric to score with")
    parser.add_argument("--force", action="store_true", help="regrade every student, current results included")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="grade these students only (again, if graded)")
    parser.add_argument("--shard", type=_shard, metavar="K/N",
                        help="grade shard K of N (students split by a hash of their name), for one machine of many")
    parser.add_argument("--roster", type=pathlib.Path, help=ROSTER_HELP)
    args = parser.parse_args(argv)
    if not args.submissions.is_dir():
        parser.error(f"{args.submissions} is not a folder of submissions")
    try:
        isolation = isolations.detect(args.isolation, args.uid_base)
        rubrics.load(args.rubric)
    except isolations.IsolationError as error:
        parser.error(str(error))
    except rubrics.RubricError as error:
        parser.error(f"invalid rubric: {error}")
    if isolation.kind == "none" and not args.no_isolation:
        parser.error(NO_ISOLATION)
    roster = _roster(parser, args.roster)
    students = [s for s in discover(args.submissions) if args.shard is None or in_shard(s.name, args.shard)]
    unknown = sorted(set(args.only or ()) - {s.name for s in students})
    if unknown:
        parser.error(f"no such student{'s' if len(unknown) > 1 else ''} in this batch: {', '.join(unknown)}")
    try:
        batch = Batch(args.out, args.grader_mode, max(1, args.jobs), args.timeout, args.gradescope, args.rubric,
                      isolation, args.submissions, roster)
    except ValueError as error:
        parser.error(str(error))
    shard = f" (shard {args.shard[0]}/{args.shard[1]})" if args.shard else ""
    print(f"{len(students)} submissions{shard} in {batch.mode} mode, {batch.jobs} at a time, isolation "
          f"{isolation.kind}", file=sys.stderr)
    batch.run(students, args.force, set(args.only) if args.only else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
