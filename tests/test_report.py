"""The report alone, from a grade dict: statuses, score lines, causes said once, exit status,
Classroom and Gradescope results. No submission is run."""
from corpus import ROOT

from grader import report, rubric
from grader.report import Result

LAB = rubric.load(ROOT / "rubric.yaml")
IDS = list(LAB.items)
BONUS = [i for i, item in LAB.items.items() if item.bonus]
REQUIRED = sum(item.points for item in LAB.items.values() if not item.bonus)


def graded(results, warnings=()):
    return report.grade(LAB, results, "virtual", "model.py", "bwrap", warnings)


def everything(status="passed", **overrides):
    return {i: overrides.get(i, Result(status)) for i in IDS}


def test_full_marks_with_the_bonus():
    g = graded(everything())
    assert (g["score"], g["max_score"], g["bonus"], g["selection"]) == (REQUIRED + 10, REQUIRED, 10, None)
    assert report.complete(g) and report.score_line(g) == f"Score: {REQUIRED:g} / {REQUIRED:g} required, bonus +10 " \
                                                          "(virtual mode)"


def test_a_bonus_never_hides_a_required_loss():
    g = graded(everything(**{"part5.memory_split": Result("failed", "no")}))
    assert g["score"] == REQUIRED - 2 + 10 and not report.complete(g)
    assert report.score_line(g).startswith(f"Score: {REQUIRED - 2:g} / {REQUIRED:g} required, bonus +10")


def test_an_unattempted_bonus_is_complete_and_said():
    g = graded(everything(**{b: Result(report.NOT_ATTEMPTED, "later") for b in BONUS}))
    assert report.complete(g) and "bonus not attempted" in report.score_line(g)
    assert all(r["status"] == "pass" for r in report.classroom(g, LAB).values())  # a green Classroom run


def test_a_subset_scores_the_selection_and_the_whole():
    results = {i: Result("passed") for i in IDS if i.startswith("part1.")}
    g = graded(results)
    part1 = sum(LAB.items[i].points for i in results)
    assert g["selection"] == {"score": part1, "max_score": part1, "bonus": 0} and report.complete(g)
    assert report.score_line(g) == f"Selected: {part1:g} / {part1:g} required; in all: {part1:g} / {REQUIRED:g} " \
                                   "required (virtual mode)"
    assert "not selected in this run: 13 items (part2 4, part3 1" in " ".join(report.table(g))


def test_a_shared_cause_is_said_once_and_its_items_are_blocked():
    cause = "importing your submission raised SyntaxError (line 3)"
    g = graded(everything("failed", **{"questions.answers": Result("failed", "3 of 10 answers match the key")}) |
               {i: Result("failed", cause) for i in IDS if i != "questions.answers"})
    rows = report.table(g)
    assert report.causes(g) == [cause] and sum(cause in r for r in rows) == 1
    assert rows[0].startswith("Fix this first: it blocks") and sum(" blocked " in r for r in rows) == len(IDS) - 1
    assert any("3 of 10 answers match the key" in r for r in rows)


def test_partial_credit_only_where_the_rubric_allows():
    g = graded(everything(**{"questions.answers": Result("failed", "7 of 10", 0.7),
                             "part2.matches_sgd": Result("failed", "no", 0.9)}))
    points = {c["id"]: c["points"] for c in g["checks"]}
    assert points["questions.answers"] == 3.5 and points["part2.matches_sgd"] == 0


def test_warnings_come_before_the_score_line():
    rows = report.table(graded(everything(), warnings=["your code printed 'hello'"]))
    assert rows[-2] == "Warning: your code printed 'hello'" and rows[-1].startswith("Score: ")


def test_gradescope_and_classroom_carry_the_same_points():
    g = graded(everything(**{"part4.seconds_plausible": Result("failed", "made up")}))
    scope, room = report.gradescope(g, 1.0), report.classroom(g, LAB)
    assert scope["score"] == g["score"] == sum(t["score"] for t in scope["tests"])
    assert sum(t["score"] for r in room.values() for t in r["tests"]) == g["score"]
    assert room["part4secondsplausible"]["status"] == "fail" and room["part4secondsplausible"]["tests"][0][
        "message"] == "made up"
