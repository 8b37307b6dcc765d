"""The timelines a student looks at: the idle GPU of SimpleMPModel, the overlap of pipelining."""
import json
import subprocess
import sys

import pytest

from corpus import ROOT
from grader.contract import PIPELINE_BATCH, SPLIT
from grader.sandbox import isolation, runner
from grader.timeline import PHASES, from_facts, strip

FORWARD = ("stage 0", "stage 1", "transfer")
PIPELINE_SPLITS = PIPELINE_BATCH // SPLIT


@pytest.fixture(scope="module")
def timelines():
    zygote = runner.Runner(isolation.detect(), ["torch", "time"]).start()
    try:
        source = (ROOT / "solutions" / "model.py").read_text()
        facts = zygote.grade(source, "model.py", "virtual", ["timeline"], runner.Limits(30, 4 * 2**30)).outcome("timeline").facts
    finally:
        zygote.close()
    return {k: from_facts(facts[k], k) for k in ("simple", "pipelined", "reference")}


def test_simple_model_leaves_one_gpu_idle(timelines):
    simple = timelines["simple"]
    assert simple.overlap == 0  # GPU 0 works, then GPU 1: never both
    assert 0.45 <= simple.idle_fraction <= 0.55  # the balanced split idles half the time
    assert {i.phase for i in simple.intervals} == {"stage 0", "stage 1", "transfer", "backward", "step"}
    first_on_1 = min(i.start for i in simple.intervals if i.gpu == 1 and i.phase == "stage 1")
    assert first_on_1 >= max(i.end for i in simple.intervals if i.gpu == 0 and i.phase == "stage 0")


def test_four_micro_batches_overlap_and_speed_up(timelines):
    pipelined, unsplit = timelines["pipelined"], timelines["reference"]
    assert PIPELINE_SPLITS == 4
    assert pipelined.overlap_of(FORWARD) > 0.2 * pipelined.span(FORWARD)
    assert pipelined.span(FORWARD) < 0.8 * unsplit.span(FORWARD)
    assert pipelined.idle_fraction < timelines["simple"].idle_fraction - 0.1


def test_strip_shows_each_gpu_busy_or_idle(timelines):
    rows = strip(timelines["simple"], width=40)
    assert [r[:9] for r in rows] == ["  cuda:0 ", "  cuda:1 "]
    assert rows[0][10] == "0" and rows[1][10] == "." and "1" in rows[1] and "B" in rows[0]


def test_tool_draws_both_models_labelled_virtual(tmp_path):
    out = tmp_path / "timeline.svg"
    run = subprocess.run([sys.executable, "-m", "grader.timeline", "--submission", "solutions/model.py",
                          "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "SimpleMPModel (modelled on virtual GPUs)" in run.stdout and "idle fraction 50%" in run.stdout
    assert f"PipelinedMPModel({SPLIT})" in run.stdout
    picture = out.read_text()
    assert picture.startswith("<svg") and "VIRTUAL GPUs" in picture and picture.count("cuda:0") == 2
    trace = json.loads(out.with_suffix(".json").read_text())["traceEvents"]
    names = {e["args"]["name"] for e in trace if e["ph"] == "M" and e["name"] == "process_name"}
    assert names == {"SimpleMPModel (modelled on virtual GPUs)",
                     f"PipelinedMPModel({SPLIT}) (modelled on virtual GPUs)"}
    spans = [e for e in trace if e["ph"] == "X"]
    assert {(e["pid"], e["tid"]) for e in spans} == {(0, 0), (0, 1), (1, 0), (1, 1)}
    assert all(e["dur"] >= 0 and e["cat"] in PHASES for e in spans)


def test_tool_on_the_starter_says_what_is_missing(tmp_path):
    run = subprocess.run([sys.executable, "-m", "grader.timeline", "--out", str(tmp_path / "t.svg")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "NotImplementedError: TODO" in run.stderr and "Traceback" not in run.stderr
