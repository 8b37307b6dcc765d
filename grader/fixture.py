"""The runtime as a pytest fixture: `def test_x(virtual_gpus): ...` runs on two virtual GPUs.

It lives outside grader/virtual/, whose package imports torch: `pytest grader/` loads this plugin
too (through the project's conftest.py), and that process never imports torch. torch is imported
when a test asks for the fixture."""
import pytest


@pytest.fixture
def virtual_gpus():
    from grader import virtual

    with virtual.virtual_gpus(2) as gpus:
        yield gpus
