"""The sandbox tells a crash from an exit, and a late reader from a late child."""
import os
import signal
import time

from corpus import ROOT, write
from grader import rubric, sandbox
from grader.guard import TAMPER

RUBRIC = rubric.load(ROOT / "rubric.yaml")


def test_a_child_killed_by_a_signal_crashed_it_did_not_tamper(tmp_path):
    child = sandbox.Child("train", str(write("endless_train", tmp_path)), "virtual", RUBRIC)
    os.kill(child.pid, signal.SIGKILL)  # as the kernel's out-of-memory killer would
    outcome = str(child.outcome())
    assert "crashed during train()" in outcome and "out of memory?" in outcome and TAMPER not in outcome


def test_an_outcome_read_after_the_deadline_still_counts():
    child = sandbox.Child("construct", str(ROOT / "solutions" / "model.py"), "virtual", RUBRIC)
    child.deadline = time.monotonic() + 30
    time.sleep(2)
    child.deadline = time.monotonic()  # the child finished long ago; its reader comes late
    assert child.outcome()["w1"]["device"] == "cuda:0"
