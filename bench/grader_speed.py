"""`pytest grader/` on the solution (virtual mode) against the floor the lab sets: the handout's
own code (Parts 1-4, tests/handout) run once on the CPU, in a fresh interpreter; both measured
in this run. Prints the median of each and their ratio (target 1.5x). Run: python bench/grader_speed.py [RUNS]

The lab's code imports torch and takes optimizer steps (which import torch._dynamo), so the
floor is what any process that runs the lab pays. Third-party pytest plugins that happen to be
installed are not loaded: the figure is the grader's own cost on a machine with only its
dependencies.
"""
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HANDOUT = os.path.join(ROOT, "tests", "handout", "parts_1_to_4.py")
ON_CPU = ("source = open({path!r}).read().replace('\"cuda:0\"', '\"cpu\"').replace('\"cuda:1\"', '\"cpu\"')"
          ".replace('torch.cuda.synchronize()', 'pass'); exec(compile(source, 'handout', 'exec'))")
FLOOR = [sys.executable, "-c", ON_CPU.format(path=HANDOUT)]
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
    floor, grade = median_seconds(FLOOR, runs), median_seconds(GRADE, runs)
    print(f"floor (the handout's Parts 1-4 once on the CPU): {floor:.2f} s")
    print(f"pytest grader/ on the solution: {grade:.2f} s")
    print(f"ratio: {grade / floor:.2f}x the floor (target 1.5x)")
