"""`pytest grader/` on the solution (virtual mode) against the floor `python -c "import torch, pytest"`,
all measured in this run; prints the median of each and their ratios. Run: python bench/grader_speed.py

A second floor adds `torch._dynamo`: torch.optim imports it on the first optimizer step (about
0.8x the first floor), so no process that runs the lab's training can start faster than that.
Third-party pytest plugins that happen to be installed (hypothesis, benchmark...) are not loaded:
the figure is the grader's own cost on a machine with only its dependencies.
"""
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLOOR = [sys.executable, "-c", "import torch, pytest"]
FLOOR_WITH_OPTIMIZER = [sys.executable, "-c", "import torch, torch._dynamo, pytest"]
GRADE = [sys.executable, "-m", "pytest", "-p", "pytest_timeout", "-p", "no:cacheprovider", "-q", "grader/",
         "--submission", "solutions/model.py", "--answers", "solutions/answers.yaml"]


def median_seconds(command, runs):
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    floor, with_optimizer = median_seconds(FLOOR, runs), median_seconds(FLOOR_WITH_OPTIMIZER, runs)
    grade = median_seconds(GRADE, runs)
    print(f"floor (import torch, pytest): {floor:.2f} s")
    print(f"floor with torch._dynamo, as any optimizer step needs: {with_optimizer:.2f} s")
    print(f"pytest grader/ on the solution: {grade:.2f} s")
    print(f"ratio: {grade / floor:.2f}x the floor (target 1.5x), {grade / with_optimizer:.2f}x the second floor")
