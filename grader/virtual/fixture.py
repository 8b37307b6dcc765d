"""The runtime as a pytest fixture: `def test_x(virtual_gpus): ...` runs on two virtual GPUs.

torch is imported when a test asks for the fixture, not when the plugin loads: `pytest grader/`
loads this plugin too (through the project's conftest.py) and starts its sandbox before torch."""
import pytest


@pytest.fixture
def virtual_gpus():
    from grader import virtual

    with virtual.virtual_gpus(2) as gpus:
        yield gpus
