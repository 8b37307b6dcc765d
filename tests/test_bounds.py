"""The grader's own side, bounded by construction: whatever a submission makes (a million clock
reads, a 40 MB message, a 2 MB string where a figure goes, figures of zero, an exception whose
__str__ raises), the grader's process stays small and quick, it loses only the items it names,
and every file written for the student stays under 1 MiB. Each submission is an edit of the
solution that gets past the static rules; they are graded together, as a TA grades a class."""
import json
import shutil

import pytest
from corpus import ROOT, SOLUTION
from helpers import fast_rubric, grade, python_m, submitted

from grader.selftest import variant

FILE_CAP = 2**20
TIME_FORWARD = "    start = time.perf_counter()\n    model(x)\n"
FIGURES = '    figures["idle_fraction"] = 1 - (figures["stage0_ms"] + figures["stage1_ms"]) / (2 * wall_ms)\n'
HOSTILE = {
    # 60,000 clock reads before and after the forward: Part 4's pairing of readings stays linear.
    "clock_flood": ((TIME_FORWARD, "    for _ in range(60000):\n        start = time.perf_counter()\n"
                                   "    model(x)\n    for _ in range(60000):\n        time.perf_counter()\n"),
                    ("part4.clock_after_sync", "part4.sync_covers_output_gpu", "part4.seconds_plausible"),
                    "far more than the lab needs"),
    # 9,000 before and 9,000 after, under the trace's cap: judged in linear time (the first reading
    # after the forward comes before the wait; the value returned is a true difference).
    "clock_many": ((TIME_FORWARD, "    for _ in range(9000):\n        start = time.perf_counter()\n"
                                  "    model(x)\n    for _ in range(9000):\n        time.perf_counter()\n"),
                   ("part4.clock_after_sync",), "is read without first waiting"),
    # 3,000 streams made to wait: the checks' replay of the streams' order stays bounded.
    "stream_flood": (("    torch.cuda.synchronize(device1)\n    return time.perf_counter() - start\n",
                      "    for _ in range(3000):\n"
                      "        torch.cuda.Stream(device1).wait_stream(torch.cuda.current_stream(device1))\n"
                      "    torch.cuda.synchronize(device1)\n    return time.perf_counter() - start\n"),
                     ("part4.clock_after_sync", "part4.sync_covers_output_gpu", "part4.seconds_plausible"),
                     "streams in one call"),
    # A one-line 40 MB message, raised by the constructor that every probe calls.
    "huge_message": (("        self.relu1 = nn.ReLU().to(device0)\n",
                      "        self.relu1 = nn.ReLU().to(device0)\n        raise RuntimeError('x' * 40_000_000)\n"),
                     None, "RuntimeError: xxx"),
    # A 2 MB string where a figure goes.
    "huge_figure": ((FIGURES, '    figures["idle_fraction"] = "9" * 2_000_000\n'),
                    ("part5.figures_measured", "part5.figures_consistent", "part5.memory_split"),
                    "not a finite number"),
    # Every figure zero: nothing divides by it.
    "zero_figures": (('    figures["memory_bytes"] =',
                      '    figures = dict.fromkeys(figures, 0.0)\n    figures["memory_bytes"] ='),
                     ("part5.figures_measured", "part5.figures_consistent"), ""),
    # An exception whose __str__ raises, from train().
    "str_raises": (("def train(model, x, y, steps=5, lr=0.01):\n",
                    "class Odd(Exception):\n    def __str__(self):\n        raise ValueError('no')\n\n\n"
                    "def train(model, x, y, steps=5, lr=0.01):\n    raise Odd()\n"),
                   ("part2.losses_returned", "part2.loss_decreases", "part2.matches_sgd", "part2.target_on_last_gpu"),
                   "raised Odd"),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """{name: (result, out folder)} of the hostile class, graded by one batch."""
    root = tmp_path_factory.mktemp("bounds")
    (root / "class").mkdir()
    for name, (edit, _, _) in HOSTILE.items():
        (root / "class" / f"{name}.py").write_text(variant((edit,), SOLUTION))
        shutil.copy(ROOT / "solutions" / "answers.yaml", root / "class" / f"{name}.yaml")
    run = python_m("grader.batch", root / "class", "--out", root / "out", "-j", "2", "--rubric", fast_rubric(root),
                   timeout=1800)
    assert run.returncode == 0, run.stderr
    return {name: json.loads((root / "out" / "results" / f"{name}.json").read_text()) for name in HOSTILE}, root / "out"


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_value_costs_only_the_items_that_read_it(name, graded):
    results, _ = graded
    _, loses, reason = HOSTILE[name]
    result = results[name]
    assert result["status"] == "graded", result["reason"]
    lost = {c["id"]: c["message"] for c in result["grade"]["checks"] if c["status"] != "passed"}
    if loses is not None:
        assert sorted(lost) == sorted(loses), lost
    assert all("internal grader error" not in m and "Traceback" not in m for m in lost.values()), lost
    assert all(reason in m for m in lost.values()), lost
    assert all(len(m) <= 2000 for m in lost.values())


def test_every_file_written_for_a_student_stays_under_a_mebibyte(graded):
    _, out = graded
    for folder in ("results", "feedback", "logs"):
        sizes = {path.name: path.stat().st_size for path in (out / folder).iterdir()}
        assert sizes and max(sizes.values()) < FILE_CAP, (folder, sizes)
    assert (out / "grades.csv").stat().st_size < FILE_CAP


def test_answers_nested_past_the_parser_cost_only_the_questions(tmp_path):
    deep = tmp_path / "answers.yaml"
    deep.write_text("computation_starts_on:\n  answer: " + "[" * 20_000 + "\n")
    _, graded = grade(tmp_path, *submitted(answers=deep))
    lost = {c["id"]: c["message"] for c in graded["checks"] if c["status"] != "passed"}
    assert list(lost) == ["questions.answers"] and "nests lists or mappings too deep" in lost["questions.answers"]
