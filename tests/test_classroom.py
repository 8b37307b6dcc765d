"""GitHub Classroom: one reporter runner per rubric item, read as the reporter (v1) reads them:
its table scores a runner as (tests passed / tests) x max_score, its Points notice adds up the
tests' scores of every runner with a max_score, and any runner whose status is `fail` or `error`
fails the run. The real reporter was run by hand on the same files (README, GitHub Classroom)."""
import base64
import json

from corpus import BONUS, FULL, POINTS, ROOT, write
from helpers import grade, python_m, submitted

from grader import report, rubric

LAB = rubric.load(ROOT / "rubric.yaml")


def reporter(runners):
    """(table rows {runner: (score, max)}, Points (total, max), whether the run is green), as the
    reporter computes them."""
    table = {r: (sum(t["status"] == "pass" for t in v["tests"]) / len(v["tests"]) * v["max_score"], v["max_score"])
             for r, v in runners.items()}
    counted = [v for v in runners.values() if v["max_score"]]
    points = (sum(t["score"] for v in counted for t in v["tests"]), sum(v["max_score"] for v in counted))
    return table, points, not any(v["status"] in ("fail", "error") for v in runners.values())


def handed_over(tmp_path, *args):
    """What the workflow's grading step hands the reporter: the runners and their results."""
    step = tmp_path / f"step{len(list(tmp_path.glob('step*')))}"  # the files of one workflow run
    step.mkdir()
    path = step / "classroom.json"
    _, graded = grade(step, "--classroom", str(path), *args)
    env, out, summary = (step / name for name in ("env", "out", "summary"))
    done = python_m("grader.classroom", path, env={"GITHUB_ENV": str(env), "GITHUB_OUTPUT": str(out),
                                                   "GITHUB_STEP_SUMMARY": str(summary)})
    assert done.returncode == 0, done.stderr
    ids = out.read_text().strip().removeprefix("runners=").split(",")
    variables = dict(line.split("=", 1) for line in env.read_text().splitlines())
    runners = {r: json.loads(base64.b64decode(variables[f"{r.upper()}_RESULTS"])) for r in ids}
    return graded, runners, summary.read_text()


def test_every_item_is_a_runner_with_its_true_points_and_a_buggy_run_is_red(tmp_path):
    graded, runners, summary = handed_over(tmp_path, *submitted(write("bare_sync", tmp_path)))
    table, points, green = reporter(runners)
    assert set(runners) == {report.runner_id(i) for i in LAB.items}
    assert {r: score for r, (score, _) in table.items()} == {report.runner_id(c["id"]): c["points"]
                                                             for c in graded["checks"]}
    assert points == (graded["score"], FULL) and not green
    assert "the synchronize waits for cuda:1 | 0/4 | failed | after the forward the code waits only" in summary


def test_full_marks_with_or_without_the_bonus_is_green(tmp_path):
    _, runners, _ = handed_over(tmp_path, *submitted())
    assert reporter(runners)[1:] == ((FULL, FULL), True)
    source = (ROOT / "solutions" / "model.py").read_text().replace(
        "        chunks = iter(", "        raise NotImplementedError(\"TODO Part 6\")\n        chunks = iter(")
    (tmp_path / "model.py").write_text(source)
    _, runners, _ = handed_over(tmp_path, *submitted(tmp_path / "model.py"))
    assert reporter(runners)[1:] == ((FULL - sum(POINTS[b] for b in BONUS), FULL), True)


def test_partial_credit_shows_in_the_table(tmp_path):
    answers = (ROOT / "solutions" / "answers.yaml").read_text().replace('  answer: "no"', "  answer: yes")
    (tmp_path / "answers.yaml").write_text(answers)
    _, runners, _ = handed_over(tmp_path, *submitted(answers=tmp_path / "answers.yaml"))
    worth = POINTS["questions.answers"]
    assert reporter(runners)[0]["questionsanswers"] == (worth * 9 / 10, worth)


def test_no_result_still_gives_the_reporter_a_reason(tmp_path):
    env, out = tmp_path / "env", tmp_path / "out"
    done = python_m("grader.classroom", tmp_path / "missing.json", env={"GITHUB_ENV": str(env),
                                                                      "GITHUB_OUTPUT": str(out)})
    assert done.returncode == 0 and out.read_text() == "runners=grader\n"
    result = json.loads(base64.b64decode(env.read_text().split("=", 1)[1]))
    assert result["status"] == "error" and result["max_score"] == LAB.max_score
    assert "the grader wrote no result" in result["tests"][0]["message"]
