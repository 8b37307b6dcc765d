"""The grader's wiring into pytest: options, mode, isolation, rubric, the probes the checks read,
and the report. `pytest grader/` loads this file as the grader's plugin; `pytest tests/` never does.

This process is the trusted side: it reads the submission's files, applies the static rules,
hands the text to the sandbox (grader.sandbox) and judges what comes back. It never runs
student code.
"""
import gc
import json
import pathlib
import threading
import time

import pytest

from grader import rubric as rubrics
from grader import rules
from grader.contract import PROBES
from grader.report import Result, classroom, grade, gradescope, table
from grader.sandbox import isolation as isolations, runner as runners

ROOT = pathlib.Path(__file__).resolve().parent.parent
GRADING = pytest.StashKey()


class Grading:
    """One grading run: what is graded, how, and what the probes found."""

    def __init__(self, config):
        self.rubric = _rubric(config.getoption("--rubric"))
        try:
            self.isolation = isolations.detect(config.getoption("--isolation"))
        except isolations.IsolationError as error:
            raise pytest.UsageError(str(error)) from None
        self.results, self.graded, self.session = {}, None, None
        self.started = time.monotonic()
        # The zygote first: it imports torch while this process does the same, side by side.
        self.runner, self.own_runner = runners.ATTACHED, runners.ATTACHED is None
        if self.own_runner:
            hidden = [self.rubric.answer_key, *isolations.SECRETS]
            self.runner = runners.Runner(self.isolation, self.rubric.allowed_imports, hidden=hidden).start()
        from grader.devices import choose_mode  # imports torch

        try:
            self.mode, self.gpus = choose_mode(config.getoption("--grader-mode"))
        except ValueError as error:
            self.finish()
            raise pytest.UsageError(str(error)) from None
        self.submission = pathlib.Path(config.getoption("--submission")).absolute()
        answers = config.getoption("--answers")
        self.answers = pathlib.Path(answers).absolute() if answers else self.submission.with_name("answers.yaml")
        self.root = config.getoption("--submission-root")
        self.problem = self._read()
        self.warming = None
        if self.problem is None:  # the references, while the sandbox starts
            from grader import reference

            self.warming = threading.Thread(target=reference.warm)
            self.warming.start()

    def _read(self):
        """The reason the submission cannot be graded at all, or None (its text is then `source`)."""
        try:
            self.source = rules.read_checked(self.submission, self.rubric.allowed_imports, self.root)
        except rules.Unusable as reason:
            return str(reason)
        return None

    def begin(self):
        """Start every probe: side by side on virtual GPUs, one at a time on real ones (the zygote
        orders them), so no probe's timing disturbs another's."""
        if self.problem is None and self.session is None:
            limits = runners.Limits(self.rubric.seconds_per_function, self.rubric.memory_bytes)
            try:
                self.session = self.runner.grade(self.source, "model.py", self.mode, list(PROBES), limits)
            except runners.RunnerLost as error:
                self.problem = f"the sandbox could not grade the submission: {error}"

    def outcome(self, name):
        self.begin()
        if self.problem is not None:
            return runners.Outcome(failure=self.problem)
        return self.session.outcome(name)

    def probe(self, name):
        outcome = self.outcome(name)
        if outcome.failure is not None:
            pytest.fail(outcome.failure, pytrace=False)
        return outcome.facts

    def finish(self):
        """Idempotent. Ending our own zygote ends all it started (the batch cleans its shared ones
        itself); torch's work in our own thread ends before the interpreter does."""
        if self.session is not None:
            self.session.finish()
        if self.own_runner and self.runner is not None:
            self.runner.close()
            self.runner = None
        if getattr(self, "warming", None) is not None:
            self.warming.join()


def _rubric(path):
    try:
        return rubrics.load(path)
    except rubrics.RubricError as error:
        raise pytest.UsageError(f"invalid rubric: {error}") from None


def pytest_addoption(parser):
    group = parser.getgroup("grader", "lab grader")
    group.addoption("--submission", default=str(ROOT / "starter" / "model.py"), help="the model.py to grade")
    group.addoption("--answers", default=None, help="its answers.yaml (default: beside the submission)")
    group.addoption("--submission-root", default=None, metavar="DIR",
                    help="the student's folder: no component between it and the files may be a link (batch)")
    group.addoption("--grade-json", default=None, metavar="PATH", help="also write the grade as JSON")
    group.addoption("--gradescope", default=None, metavar="PATH", help="also write Gradescope's results.json")
    group.addoption("--classroom", default=None, metavar="PATH",
                    help="also write GitHub Classroom's reporter result (JSON; base64 it into <RUNNER>_RESULTS)")
    group.addoption("--grader-mode", choices=("auto", "real", "virtual"), default="auto",
                    help="real: two CUDA GPUs; virtual: CPU-backed ones; auto: real when two are visible")
    group.addoption("--isolation", choices=isolations.KINDS, default="auto",
                    help="how student code is isolated: bwrap (namespaces), uid (root: a uid of its own), none; "
                         "auto: the strongest available")
    group.addoption("--rubric", default=str(ROOT / "rubric.yaml"), help="the rubric.yaml to score with")


def pytest_configure(config):
    config.addinivalue_line("markers", "rubric(id): the rubric item this check awards")
    config.stash[GRADING] = Grading(config)


def pytest_report_header(config):
    g = config.stash[GRADING]
    if g.mode == "real":
        mode = f"real mode: {g.gpus} CUDA GPUs visible, checks run on cuda:0 and cuda:1"
    else:
        mode = (f"VIRTUAL mode: {g.gpus} CUDA GPU(s) visible, fewer than two; checks run on virtual "
                "GPUs backed by the CPU (see README, 'Virtual mode')")
    return [f"grader: {mode}", f"grader: isolation {g.isolation.kind} ({g.isolation.describe()})",
            f"grader: submission {g.submission}", f"grader: answers {g.answers}"]


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselect: the mapping is checked on every check
def pytest_collection_modifyitems(config, items):
    g = config.stash[GRADING]
    ids = []
    for item in items:
        marker = item.get_closest_marker("rubric")
        if marker is None:
            raise pytest.UsageError(f"{item.nodeid} has no @rubric(id): every check must award a rubric item")
        ids.append(marker.args[0])
    try:
        rubrics.check_mapping(g.rubric, ids)
    except rubrics.RubricError as error:
        raise pytest.UsageError(f"rubric and checks disagree: {error}") from None
    for item, item_id in zip(items, ids):
        if g.mode not in g.rubric.items[item_id].modes:
            item.add_marker(pytest.mark.skip(reason=f"not graded in {g.mode} mode"))
        # A backstop: probes enforce their own limit and report it more precisely.
        item.add_marker(pytest.mark.timeout(g.rubric.seconds_per_function * len(PROBES) + 60))


def pytest_collection_finish(session):
    gc.freeze()  # torch's objects live for the whole run: keep them out of every collection
    if session.items:
        session.config.stash[GRADING].begin()


@pytest.fixture(scope="session")
def probe(pytestconfig):
    """`probe(name)`: the facts of one probe of the submission, run once per grading run."""
    return pytestconfig.stash[GRADING].probe


@pytest.fixture(scope="session")
def grading(pytestconfig):
    return pytestconfig.stash[GRADING]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    report = (yield).get_result()
    item_id = item.get_closest_marker("rubric").args[0]
    results = item.config.stash[GRADING].results
    if item_id in results and results[item_id].status != "passed":
        return  # the first setback of an item (setup, call or teardown) is its result
    if report.skipped:
        results[item_id] = Result("not_graded", report.longrepr[2].removeprefix("Skipped: "))
    elif report.failed:
        results[item_id] = _failure(call)
    elif report.when == "call":
        results[item_id] = Result("passed")


def _failure(call):
    error = call.excinfo.value
    if isinstance(error, pytest.fail.Exception):
        message = str(error)
        if message.startswith("Timeout"):
            message = f"the check did not finish in time ({message})"
        return Result("failed", message)
    return Result("error", f"internal grader error, please report it: {type(error).__name__}: {error}")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    g = session.config.stash.get(GRADING, None)
    if g is None:
        return
    g.finish()
    if session.config.option.collectonly:
        return
    g.graded = grade(g.rubric, g.results, g.mode, g.submission, g.isolation.kind)
    outputs = {
        "--grade-json": lambda: g.graded,
        "--gradescope": lambda: gradescope(g.graded, time.monotonic() - g.started),
        "--classroom": lambda: classroom(g.graded),
    }
    for option, make in outputs.items():
        if session.config.getoption(option):
            path = pathlib.Path(session.config.getoption(option))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(make(), indent=2) + "\n")
    if g.graded["score"] < g.graded["max_score"]:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config):
    g = config.stash.get(GRADING, None)
    if g is not None:
        g.finish()  # also after a usage error, when sessionfinish never ran


def pytest_terminal_summary(terminalreporter, config):
    g = config.stash.get(GRADING, None)
    if g is not None and g.graded is not None:
        terminalreporter.section("grade")
        for row in table(g.graded):
            terminalreporter.write_line(row)
