"""The runtime as a pytest fixture: `def test_x(virtual_gpus): ...` runs on two virtual GPUs."""
import pytest

from grader import virtual


@pytest.fixture
def virtual_gpus():
    with virtual.virtual_gpus(2) as gpus:
        yield gpus
