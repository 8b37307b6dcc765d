"""Classroom 50's runner runs this once per submission (`python autograder.py`, in the student's
checkout, from the assignment's bundle that `python -m grader.release OUT --classroom50 BUNDLE`
wrote). It installs what the grader needs into the job's Python unless it is there already (a
self-hosted runner or a container that has it): the CPU build of torch, which saves the multi-GB
CUDA download, then the bundle's own dependencies. Then `python -m grader.classroom50` grades the
checkout with the bundle's copy of the grader, or, when the install failed, writes a result that
says why. Only the standard library here: nothing is installed yet.
"""
import os
import pathlib
import subprocess
import sys

import tomllib

HERE = pathlib.Path(__file__).resolve().parent  # the bundle: its grader/, rubric.yaml, pyproject.toml
TORCH = ["--index-url", "https://download.pytorch.org/whl/cpu", "torch==2.13.0"]
PRESENT = "import numpy, pytest, pytest_timeout, torch, yaml"


def install():
    """None once the grader's packages import in this Python, else why they could not be installed."""
    if subprocess.run([sys.executable, "-c", PRESENT], capture_output=True).returncode == 0:
        return None
    needed = tomllib.loads((HERE / "pyproject.toml").read_text())["project"]["dependencies"]
    for packages in (TORCH, needed):
        command = [sys.executable, "-m", "pip", "install", "--quiet", *packages]
        if subprocess.run(command).returncode:
            return f"installing {' '.join(packages)} failed: see the grading step's log"
    return None


def main():
    why = install()
    env = {**os.environ, "PYTHONPATH": str(HERE)}  # the bundle's grader, whatever the checkout holds
    command = [sys.executable, "-m", "grader.classroom50", "--checkout", os.getcwd()]
    return subprocess.run(command + (["--not-graded", why] if why else []), cwd=HERE, env=env).returncode


if __name__ == "__main__":
    sys.exit(main())
