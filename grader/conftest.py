"""The grader's wiring into pytest: `pytest grader/` loads this file, which registers `Grading`, a
plugin object whose hooks are its methods (pytest's LogXML pattern); `pytest tests/` never does.

This process is the trusted side: it reads the submission's files, hands the text to the
sandbox (grader.sandbox, which applies the static rules before any of it runs) and judges what
comes back. It never runs student code, and never imports torch. The grade table is the report:
pytest's own tracebacks and failure summary would repeat each reason, so they are off unless
asked for (`--tb=...`, `-r...`).
"""
import gc
import importlib
import json
import pathlib
import threading
import time

import pytest
from pytest_timeout import PYTEST_FAILURE_MESSAGE

from grader import ROOT, reference
from grader import rubric as rubrics
from grader.checks import NotAttempted, PartialCredit
from grader.contract import MODE_CHOICES, MODE_HELP, probe_seconds
from grader.facts import GRADING, Shared
from grader.report import (
    NOT_ATTEMPTED,
    NOT_GRADED,
    NOT_RUN,
    Result,
    classroom,
    complete,
    grade,
    gradescope,
    summary,
    table,
)
from grader.sandbox import files
from grader.sandbox import isolation as isolations
from grader.sandbox import runner as runners

CHECKS = pathlib.Path(__file__).resolve().parent / "checks"
PLUGIN = "grader"
BACKSTOP = 60  # seconds past the probes' own limits before pytest-timeout ends a check

SUBMISSION_HELP = "the model.py to grade (default: starter/model.py)"
ANSWERS_HELP = "its answers.yaml (default: the answers.yaml beside the submission)"
ROOT_HELP = "the student's folder: no component between it and the files may be a link (batch)"
JSON_HELP = "also write the grade as JSON (its folder is created)"
GRADESCOPE_HELP = "also write Gradescope's results.json"
CLASSROOM_HELP = ("also write GitHub Classroom's reporter results, one runner per item "
                  "(python -m grader.classroom hands them to the reporter)")
ISOLATION_HELP = ("how student code is isolated: bwrap (namespaces), uid (root: a uid of its own), none; "
                  "auto (default): the strongest available")
RUBRIC_HELP = "the rubric.yaml to score with (default: the project's)"
KEY_HELP = "the answer key to grade the questions with (default: the one the rubric names)"
OUTPUTS = {"--grade-json": JSON_HELP, "--gradescope": GRADESCOPE_HELP, "--classroom": CLASSROOM_HELP}


def pytest_addoption(parser):
    group = parser.getgroup("grader", "lab grader")
    group.addoption("--submission", default=str(ROOT / "starter" / "model.py"), help=SUBMISSION_HELP)
    group.addoption("--answers", default=None, help=ANSWERS_HELP)
    group.addoption("--submission-root", default=None, metavar="DIR", help=ROOT_HELP)
    for option, text in OUTPUTS.items():
        group.addoption(option, default=None, metavar="PATH", type=_output_path, help=text)
    group.addoption("--grader-mode", choices=MODE_CHOICES, default="auto", help=MODE_HELP)
    group.addoption("--isolation", choices=isolations.KINDS, default="auto", help=ISOLATION_HELP)
    group.addoption("--rubric", default=str(ROOT / "rubric.yaml"), help=RUBRIC_HELP)
    group.addoption("--answer-key", default=None, metavar="PATH", help=KEY_HELP)


def _output_path(value):
    """An output file's path, its folder created now: a folder that cannot be made is a usage
    error before grading, not a crash after it."""
    path = pathlib.Path(value)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise pytest.UsageError(f"cannot write {value}: {error.strerror}") from None
    if path.is_dir():
        raise pytest.UsageError(f"cannot write {value}: it is a folder")
    return path


def pytest_configure(config):
    config.addinivalue_line("markers", "rubric(id): the rubric item this check awards")
    if config.option.tbstyle == "auto":
        config.option.tbstyle = "no"
    if config.option.reportchars == "fE":  # pytest's default: the summary would repeat the table
        config.option.reportchars = ""
    config.pluginmanager.register(Grading(config), PLUGIN)


def check_ids():
    """{node name: rubric id} of every check in grader/checks, whatever this run selects: the
    rubric is validated against all of them."""
    ids = {}
    for path in sorted(CHECKS.glob("test_*.py")):
        module = importlib.import_module(f"grader.checks.{path.stem}")
        for name, function in vars(module).items():
            if name.startswith("test_") and callable(function):
                marks = [m for m in getattr(function, "pytestmark", []) if m.name == "rubric"]
                if not marks:
                    raise pytest.UsageError(f"grader/checks/{path.name}::{name} has no @rubric(id): every check must "
                                            "award a rubric item")
                ids[f"{path.name}::{name}"] = marks[0].args[0]
    return ids


@pytest.fixture(scope="session")
def grading(pytestconfig):
    return pytestconfig.pluginmanager.get_plugin(PLUGIN)


@pytest.fixture(scope="session")
def probe(grading):
    """`probe(name)`: the facts of one probe of the submission, run once per grading run."""
    return grading.probe


class Grading:
    """One grading run: what is graded, how, what the probes found, and its report."""

    def __init__(self, config):
        self.rubric = _rubric(config.getoption("--rubric"), config.getoption("--answer-key"))
        try:
            self.isolation = isolations.detect(config.getoption("--isolation"))
        except isolations.IsolationError as error:
            raise pytest.UsageError(str(error)) from None
        self.results, self.selected, self.graded, self.session = {}, [], None, None
        self.started = time.monotonic()
        # The zygote first: it imports torch (this process never does) while the rest is read here,
        # and the references are computed on the core it leaves free.
        self.runner, self.own_runner = runners.ATTACHED, runners.ATTACHED is None
        if self.own_runner:
            hidden = [self.rubric.answer_key, *isolations.SECRETS]
            self.runner = runners.Runner(self.isolation, self.rubric.allowed_imports, hidden=hidden,
                                         limits=_limits(self.rubric)).start()
        self.warming = threading.Thread(target=reference.warm)
        self.warming.start()
        try:
            self.check_ids = check_ids()  # collected once: the mapping is checked, then items are matched
            rubrics.check_mapping(self.rubric, list(self.check_ids.values()))
        except rubrics.RubricError as error:
            self.finish()
            raise pytest.UsageError(f"rubric and checks disagree: {error}") from None
        self.submission = pathlib.Path(config.getoption("--submission")).absolute()
        answers = config.getoption("--answers")
        self.answers = pathlib.Path(answers).absolute() if answers else self.submission.with_name("answers.yaml")
        self.root = config.getoption("--submission-root")
        self.source, self.problem = files.submission(self.submission, self.root)
        asked = config.getoption("--grader-mode")
        try:
            self.mode, self.gpus = self.runner.mode(asked)
        except ValueError as error:
            self.finish()
            raise pytest.UsageError(str(error)) from None
        except runners.RunnerLost as error:  # every check says so; the run still reports
            self.mode, self.gpus = ("virtual" if asked == "auto" else asked), 0
            self.problem = self.problem or f"the sandbox could not grade the submission: {error}"

    # -- what the checks ask -------------------------------------------------------------------
    def begin(self):
        """Start every probe: side by side on virtual GPUs, one at a time on real ones (the zygote
        orders them), so no probe's timing disturbs another's."""
        if self.problem is None and self.session is None:
            try:
                self.session = self.runner.grade(self.source, "model.py", self.mode, GRADING, _limits(self.rubric))
            except runners.RunnerLost as error:
                self.problem = f"the sandbox could not grade the submission: {error}"

    def outcome(self, name):
        self.begin()
        if self.problem is not None:
            return runners.Outcome(failure=self.problem)
        return self.session.outcome(name)

    def shared(self):
        """The facts every grading shares (grader.facts.Shared), which the sandbox computed before
        any submission."""
        return Shared.from_json(self.runner.shared)

    def probe(self, name):
        outcome = self.outcome(name)
        if outcome.failure is not None:
            pytest.fail(outcome.failure, pytrace=False)
        return outcome.facts

    def finish(self):
        """Idempotent. Ending our own zygote ends all it started (the batch cleans its shared ones
        itself); the references' thread ends before the interpreter does."""
        if self.session is not None:
            self.session.finish()
        if self.own_runner and self.runner is not None:
            self.runner.close()
            self.runner = None
        if self.warming is not None:
            self.warming.join()

    def stray_output(self):
        """The warning for what the submission printed outside the calls whose output is read
        (forward's verbose lines), or None."""
        if self.session is None or not (self.session.output or self.session.dropped):
            return None
        lines = list(dict.fromkeys(_printable(line) for line in self.session.output.decode("utf-8", "replace")
                                   .splitlines() if line.strip()))
        shown = "; ".join(f"'{line}'" for line in lines[:3]) + (f" and {len(lines) - 3} more" if len(lines) > 3 else "")
        return (f"your code printed {shown} while it was graded (each probe imports it, so module-level code runs "
                "every time): remove the demo code, or put it under `if __name__ == \"__main__\":`")

    # -- pytest's hooks --------------------------------------------------------------------------
    def pytest_report_header(self, config):
        if self.mode == "real":
            mode = f"real mode: {self.gpus} CUDA GPUs visible, checks run on cuda:0 and cuda:1"
        else:
            mode = (f"VIRTUAL mode: {self.gpus} CUDA GPU(s) visible, fewer than two; checks run on virtual "
                    "GPUs backed by the CPU (see README, 'Virtual mode')")
        return [f"grader: {mode}", f"grader: isolation {self.isolation.kind} ({self.isolation.describe()})",
                f"grader: submission {self.submission}", f"grader: answers {self.answers}"]

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, config, items):
        ids = self.check_ids
        for item in items:
            item_id = ids.get(f"{item.path.name}::{item.name}") if item.path.parent == CHECKS else None
            if item_id is None:
                continue  # not a check of this grader (pytest grader/ tests/ together): not ours to score
            if self.mode not in self.rubric.items[item_id].modes:
                item.add_marker(pytest.mark.skip(reason=f"not graded in {self.mode} mode"))
            # A backstop: probes enforce their own limit and report it more precisely.
            limit = probe_seconds(self.rubric.seconds_per_function, "real", GRADING) + BACKSTOP
            item.add_marker(pytest.mark.timeout(limit))

    def pytest_collection_finish(self, session):
        """What survived -k, -m and the paths given is what this run grades."""
        gc.freeze()  # what is imported lives for the whole run: keep it out of every collection
        self.selected = [m.args[0] for item in session.items for m in [item.get_closest_marker("rubric")] if m]
        if self.selected:
            self.begin()

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = (yield).get_result()
        marker = item.get_closest_marker("rubric")
        if marker is None:
            return
        item_id = marker.args[0]
        if item_id in self.results and self.results[item_id].status != "passed":
            return  # the first setback of an item (setup, call or teardown) is its result
        error = call.excinfo.value if call.excinfo is not None else None
        if isinstance(error, NotAttempted):
            self.results[item_id] = Result(NOT_ATTEMPTED, str(error.msg))
        elif report.skipped:
            self.results[item_id] = Result(NOT_GRADED, report.longrepr[2].removeprefix("Skipped: "))
        elif report.failed:
            self.results[item_id] = _failure(error)
        elif report.when == "call":
            self.results[item_id] = Result("passed")

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session, exitstatus):
        self.finish()
        if session.config.option.collectonly or not self.selected:
            return
        for item_id in self.selected:
            self.results.setdefault(item_id, Result(NOT_RUN))
        warnings = [w for w in [self.stray_output()] if w]
        self.graded = grade(self.rubric, self.results, self.mode, self.submission, self.isolation.kind, warnings)
        outputs = {"--grade-json": lambda: self.graded,
                   "--gradescope": lambda: gradescope(self.graded, time.monotonic() - self.started),
                   "--classroom": lambda: {"runners": classroom(self.graded, self.rubric),
                                           "summary": summary(self.graded)}}
        for option, make in outputs.items():
            if session.config.getoption(option):
                session.config.getoption(option).write_text(json.dumps(make(), indent=2) + "\n")
        if exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):
            session.exitstatus = pytest.ExitCode.OK if complete(self.graded) else pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter):
        if self.graded is not None:
            terminalreporter.section("grade")
            for row in table(self.graded):
                terminalreporter.write_line(row)

    def pytest_unconfigure(self, config):
        self.finish()  # also after a usage error, when sessionfinish never ran


def _limits(rubric):
    return runners.Limits(rubric.seconds_per_function, rubric.memory_bytes)


def _rubric(path, answer_key):
    try:
        return rubrics.load(path, answer_key)
    except rubrics.RubricError as error:
        raise pytest.UsageError(f"invalid rubric: {error}") from None


def _failure(error):
    if isinstance(error, PartialCredit):
        return Result("failed", str(error.msg), error.fraction)
    if isinstance(error, pytest.fail.Exception):
        message = str(error.msg)
        if message.startswith(PYTEST_FAILURE_MESSAGE.split("%")[0]):
            message = f"the check did not finish in time ({message})"
        return Result("failed", message)
    return Result("error", f"internal grader error, please report it: {type(error).__name__}: {error}")


def _printable(line, width=100):
    """A line of the submission's output as plain text: no control characters, at most `width`."""
    text = "".join(c if c.isprintable() else "?" for c in line.strip())
    return text if len(text) <= width else text[:width - 3] + "..."
