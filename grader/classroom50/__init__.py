"""Classroom 50: `autograder.py` (the bundle's entry point, which Classroom 50's runner runs in the
student's checkout) and `python -m grader.classroom50`, which grades that checkout and writes what
the runner publishes."""
