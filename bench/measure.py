"""Timing for the benchmarks: each figure is the median of runs taken in turn with its floor, so
that a change in the machine's load falls on both alike, and is reported as a ratio to it."""
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def medians(runs, repeats):
    """The median seconds of each of `runs` (callables), taken in turn `repeats` times."""
    times = [[] for _ in runs]
    for _ in range(repeats):
        for run, taken in zip(runs, times):
            start = time.perf_counter()
            run()
            taken.append(time.perf_counter() - start)
    return [statistics.median(taken) for taken in times]


def command(*argv, env=None):
    """A run of `argv` in the project's folder, its output discarded; it must succeed."""
    return lambda: subprocess.run(argv, cwd=ROOT, env=env, check=True, capture_output=True)


def import_torch():
    """The batch's floor: a fresh interpreter that imports torch."""
    return command(sys.executable, "-c", "import torch")


def report(name, seconds, floor_name, floor, target):
    """Print a figure, its floor and their ratio against the target (the README's)."""
    ratio = seconds / floor
    print(f"{floor_name}: {floor:.3f} s")
    print(f"{name}: {seconds:.3f} s")
    print(f"ratio: {ratio:.2f}x the floor (target {target}x): {'met' if ratio <= target else 'NOT met'}")
    return ratio
