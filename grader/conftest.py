"""The grader's wiring into pytest: options, mode, rubric, the probes the checks read, the report.

`pytest grader/` loads this file as the grader's plugin; `pytest tests/` never does.
"""
import gc
import json
import pathlib
import time

import pytest
import torch  # noqa: F401 - imported before the freeze below

gc.freeze()  # torch's objects live for the whole run: keep them out of every collection

from grader import probes, sandbox
from grader import rubric as rubrics
from grader.devices import choose_mode
from grader.report import Result, classroom, grade, gradescope, table

ROOT = pathlib.Path(__file__).resolve().parent.parent
GRADING = pytest.StashKey()


class Grading:
    """One grading run: what is graded, how, and what the checks found."""

    def __init__(self, rubric, mode, gpus, submission, answers, run_as):
        self.rubric, self.mode, self.gpus = rubric, mode, gpus
        self.submission, self.answers, self.run_as = submission, answers, run_as
        self.children = {}  # probe name -> sandbox.Child
        self.results = {}  # rubric id -> Result
        self.graded = None
        self.started = time.monotonic()

    def start(self, name):
        if name not in self.children:
            self.children[name] = sandbox.Child(name, str(self.submission), self.mode, self.rubric, self.run_as)
        return self.children[name]

    def probe(self, name):
        outcome = self.start(name).outcome()
        if isinstance(outcome, sandbox.ProbeFailed):
            pytest.fail(str(outcome), pytrace=False)
        return outcome


def pytest_addoption(parser):
    group = parser.getgroup("grader", "lab grader")
    group.addoption("--submission", default=str(ROOT / "starter" / "model.py"), help="the model.py to grade")
    group.addoption("--answers", default=None, help="its answers.yaml (default: beside the submission)")
    group.addoption("--grade-json", default=None, metavar="PATH", help="also write the grade as JSON")
    group.addoption("--gradescope", default=None, metavar="PATH", help="also write Gradescope's results.json")
    group.addoption("--classroom", default=None, metavar="PATH",
                    help="also write GitHub Classroom's reporter result (JSON; base64 it into <RUNNER>_RESULTS)")
    group.addoption("--grader-mode", choices=("auto", "real", "virtual"), default="auto",
                    help="real: two CUDA GPUs; virtual: CPU-backed ones; auto: real when two are visible")
    group.addoption("--rubric", default=str(ROOT / "rubric.yaml"), help="the rubric.yaml to score with")
    group.addoption("--run-as", default=None, metavar="USER",
                    help="run student code as USER (needs root; grader.batch uses nobody)")


def pytest_configure(config):
    config.addinivalue_line("markers", "rubric(id): the rubric item this check awards")
    try:
        rubric = rubrics.load(config.getoption("--rubric"))
    except rubrics.RubricError as error:
        raise pytest.UsageError(f"invalid rubric: {error}") from None
    try:
        mode, gpus = choose_mode(config.getoption("--grader-mode"))
    except ValueError as error:
        raise pytest.UsageError(str(error)) from None
    submission = pathlib.Path(config.getoption("--submission")).resolve()
    answers = pathlib.Path(config.getoption("--answers") or submission.with_name("answers.yaml")).resolve()
    config.stash[GRADING] = Grading(rubric, mode, gpus, submission, answers, config.getoption("--run-as"))


def pytest_report_header(config):
    g = config.stash[GRADING]
    if g.mode == "real":
        mode = f"real mode: {g.gpus} CUDA GPUs visible, checks run on cuda:0 and cuda:1"
    else:
        mode = (f"VIRTUAL mode: {g.gpus} CUDA GPU(s) visible, fewer than two; checks run on virtual "
                "GPUs backed by the CPU (see README, 'Virtual mode')")
    return [f"grader: {mode}", f"grader: submission {g.submission}", f"grader: answers {g.answers}"]


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
        item.add_marker(pytest.mark.timeout(g.rubric.seconds_per_function + 30))


def pytest_collection_finish(session):
    """Virtual GPUs: start every probe at once, so they share the cores while the checks wait.
    Real GPUs: one at a time, as needed, so that no probe's timing disturbs another's."""
    g = session.config.stash[GRADING]
    if g.mode == "virtual" and session.items:
        for name in probes.DESCRIPTIONS:
            g.start(name)


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
    for child in g.children.values():
        child.close()
    if session.config.option.collectonly:
        return
    g.graded = grade(g.rubric, g.results, g.mode, g.submission)
    outputs = {
        "--grade-json": lambda: g.graded,
        "--gradescope": lambda: gradescope(g.graded, time.monotonic() - g.started),
        "--classroom": lambda: classroom(g.graded),
    }
    for option, make in outputs.items():
        if session.config.getoption(option):
            pathlib.Path(session.config.getoption(option)).write_text(json.dumps(make(), indent=2) + "\n")
    if g.graded["score"] < g.graded["max_score"]:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config):
    g = config.stash.get(GRADING, None)
    if g is not None and g.graded is not None:
        terminalreporter.section("grade")
        for row in table(g.graded):
            terminalreporter.write_line(row)
