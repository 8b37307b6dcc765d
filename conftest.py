"""Project-wide pytest setup: the virtual-GPU fixture for the project's own tests.

The grader's options and report live in grader/conftest.py, loaded by `pytest grader/` only.
"""
pytest_plugins = ["grader.virtual.fixture"]


def pytest_configure(config):
    config.addinivalue_line("markers", "rubric(id): the rubric item a grader check awards (grader/checks)")
