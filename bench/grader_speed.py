"""A student's run, `pytest grader/` on the solution (virtual mode), against the floor the lab sets:
the handout's own code (Parts 1-4, tests/handout) run once on the CPU in a fresh interpreter, which
imports torch and takes optimizer steps; the two taken in turn in this run. Target: 1.0x.
Run: python bench/grader_speed.py [RUNS]

Third-party pytest plugins that happen to be installed are not loaded: the figure is the grader's
own cost on a machine with only its dependencies.
"""
import os
import sys

from measure import ROOT, command, medians, report

TARGET = 1.0
HANDOUT = os.path.join(ROOT, "tests", "handout", "parts_1_to_4.py")
ON_CPU = ("source = open({path!r}).read().replace('\"cuda:0\"', '\"cpu\"').replace('\"cuda:1\"', '\"cpu\"')"
          ".replace('torch.cuda.synchronize()', 'pass'); exec(compile(source, 'handout', 'exec'))")
ENV = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
FLOOR = command(sys.executable, "-c", ON_CPU.format(path=HANDOUT), env=ENV)
GRADE = command(sys.executable, "-m", "pytest", "-p", "pytest_timeout", "-p", "no:cacheprovider", "-q", "grader/",
                "--submission", "solutions/model.py", "--answers", "solutions/answers.yaml", env=ENV)


def ratio(runs=5):
    floor, grade = medians([FLOOR, GRADE], runs)
    return report("pytest grader/ on the solution", grade, "the handout's Parts 1-4 once on the CPU", floor, TARGET)


if __name__ == "__main__":
    ratio(int(sys.argv[1]) if len(sys.argv) > 1 else 5)
