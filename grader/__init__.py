"""Autograder for the layer-wise model parallelism lab.

The folders show the architecture:
  virtual/, devices.py, trace.py  run student code on two GPUs, real or virtual, and record what it did
  sandbox.py, probes.py, guard.py run one piece of a submission in a disposable child process,
                                  and refuse or detect tampering
  checks/                         judge the recorded facts (the pytest tests, one file per lab part)
  rubric.py                       the points, from rubric.yaml only
  report.py, conftest.py          the table, the score and the files a grading run reports (pytest wiring)
  batch.py, release.py, gradescope/  a whole class; the student template; Gradescope's scripts
"""
