"""Autograder for the layer-wise model parallelism lab.

The folders show the architecture, untrusted side first:
  virtual/, devices.py, trace.py  run student code on two GPUs, real or virtual, and record what it did
  runner/                         the zygote, the probes, their own math: run inside the sandbox, as the student
  rules.py                        what a submission may write, checked in the sandbox before any of it runs
  wire.py, facts.py               what crosses the boundary: frames, and each probe's facts as a type
  contract.py, costs.py           the lab's constants and the cost model, for either side
  procs.py, heap.py               processes below one and a child's end; freed memory kept: either side
  sandbox/                        the trusted parent end: isolation, the zygote's results, reading files
  answers.py                      answers.yaml read safely
  inputs.py, reference.py         the grader's own weights and batches (both sides), and its own math (numpy)
  checks/                         judge the facts (the pytest tests, one file per lab part)
  rubric.py                       the points, from rubric.yaml only
  report.py, conftest.py          the table, the score and the files a grading run reports (pytest wiring)
  gradebook.py, rows.py           a class's gradebook: results, reruns, merges, the typed rows of grades.csv
  reasons.py, classview.py, classpage.py, lms.py  the class at a glance (class.json, report.html); the LMS files
  batch.py, release.py, gradescope/, timeline/  a whole class; the student template; Gradescope; timelines
  hosted.py, classroom50/         one student's copied files through the batch; Classroom 50's bundle
  selftest.py                     checks the grader on this machine's GPUs, before a term
  fixture.py                      the virtual GPUs as a pytest fixture, for the project's own tests
"""
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent  # the project: starter/, solutions/, rubric.yaml
