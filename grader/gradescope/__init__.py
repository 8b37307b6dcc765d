"""Gradescope: `setup.sh` and `run_autograder` (the scripts Gradescope runs) and `python -m
grader.gradescope`, which grades one upload as Gradescope lays it out."""
