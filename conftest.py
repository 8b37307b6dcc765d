"""Project-wide pytest setup: the virtual-GPU fixture for the project's own tests, and a pointer
for a run that finds nothing to do (`pytest` inside starter/).

The grader's options and report live in grader/conftest.py, loaded by `pytest grader/` only.
"""
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent
pytest_plugins = ["grader.fixture"]


def pytest_configure(config):
    config.addinivalue_line("markers", "rubric(id): the rubric item a grader check awards (grader/checks)")


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        terminalreporter.write_line(f"nothing to run here: to grade your work, run `pytest grader/` in {ROOT}"
                                    + (" (cd ..)" if pathlib.Path.cwd() == ROOT / "starter" else ""), yellow=True)
