"""What a grading run reports: the grade (the one dict every output is made from) and its table."""
from __future__ import annotations

import collections
import dataclasses
import pathlib
import textwrap
import typing

from grader.bounded import shorten

if typing.TYPE_CHECKING:
    from grader.rubric import Rubric

# Statuses of an item. Only "passed", "failed" and "error" were graded; the others count toward
# neither the score nor the maximum.
Status = typing.Literal["passed", "failed", "error", "not_graded", "not_selected", "not_run", "not_attempted"]
Grade = dict  # the --grade-json shape: see grade()
GRADED = ("passed", "failed", "error")
NOT_GRADED = "not_graded"  # outside the item's modes, or its key is not here
NOT_SELECTED = "not_selected"  # left out of this run by a file path, -k, -m or a node id
NOT_RUN = "not_run"  # selected, but the run stopped first (-x, --maxfail, Ctrl-C)
NOT_ATTEMPTED = "not_attempted"  # a bonus the submission has not started (the starter's stub)
LEFT_OUT = {NOT_SELECTED: "not selected in this run",
            NOT_RUN: "not run: the session stopped first (-x, --maxfail or an interrupt)"}


@dataclasses.dataclass(frozen=True)
class Result:
    status: Status
    message: str = ""
    fraction: float = 0.0  # of the item's points a failed check earned (partial credit items)


def grade(rubric: Rubric, results: dict[str, Result], mode: str, submission: str | pathlib.Path, isolation: str,
          warnings: typing.Sequence[str] = ()) -> Grade:
    """The `--grade-json` shape. `score` counts the bonus; `max_score` is the required maximum;
    `bonus` is the bonus part of the score. `selection` is the same for the checks this run
    selected, or None when it selected them all."""
    checks = []
    for item in rubric.items.values():
        result = results.get(item.id, Result(NOT_SELECTED, LEFT_OUT[NOT_SELECTED]))
        points = {"passed": item.points, "failed": item.credit(result.fraction)}.get(result.status, 0.0)
        checks.append({"id": item.id, "title": item.title, "points": points, "max_points": item.max_points,
                       "bonus": item.bonus, "status": result.status, "message": shorten(result.message)})
    graded = {**_totals(checks), "mode": mode, "isolation": isolation, "submission": str(submission),
              "warnings": [shorten(w) for w in warnings], "checks": checks}
    selected = [c for c in checks if c["status"] not in LEFT_OUT]
    graded["selection"] = _totals(selected) if len(selected) < len(checks) else None
    return graded


def _totals(checks):
    """Points earned, the required maximum of the items gradable in this mode, the bonus earned."""
    return {"score": sum(c["points"] for c in checks),
            "max_score": sum(c["max_points"] for c in checks if c["status"] != NOT_GRADED),
            "bonus": sum(c["points"] for c in checks if c["bonus"])}


def complete(graded: Grade) -> bool:
    """Whether every required point of what was selected was earned (the exit status is 0)."""
    totals = graded["selection"] or graded
    return totals["score"] - totals["bonus"] >= totals["max_score"]


def score_line(graded: Grade) -> str:
    """`Score: 110 / 110 required, bonus +10 (virtual mode)`; for a subset, the selection first."""
    def part(totals):
        required = f"{totals['score'] - totals['bonus']:g} / {totals['max_score']:g} required"
        return required + (f", bonus +{totals['bonus']:g}" if totals["bonus"] else "")

    bonus_items = [c for c in graded["checks"] if c["bonus"]]
    unattempted = bool(bonus_items) and all(c["status"] == NOT_ATTEMPTED for c in bonus_items)
    whole = part(graded) + (", bonus not attempted" if unattempted else "")
    if graded["selection"] is None:
        return f"Score: {whole} ({graded['mode']} mode)"
    return f"Selected: {part(graded['selection'])}; in all: {whole} ({graded['mode']} mode)"


def causes(graded: Grade) -> list[str]:
    """The reasons shared by two or more items that lost points, in order: each is one problem
    (an import error, a constructor that raises) that blocks every item it is reported for."""
    lost = [c["message"] for c in graded["checks"] if c["status"] in ("failed", "error") and c["message"]]
    return [message for message, count in collections.Counter(lost).items() if count >= 2]


def table(graded: Grade, width: int = 100) -> list[str]:
    """The report: what to fix first (a reason shared by several items, said once; those items
    are 'blocked'), one row per item (points, status, id, title) with the reason under any other
    item that lost points, then warnings and the score line."""
    rows, shared = [], causes(graded)
    def wrap(text, indent):
        return textwrap.wrap(text, width - indent, initial_indent=" " * indent, subsequent_indent=" " * indent)

    for n, cause in enumerate(shared, 1):
        blocked = sum(c["message"] == cause for c in graded["checks"])
        label = "Fix this first" if len(shared) == 1 else f"Problem ({n})"
        rows.append(f"{label}: it blocks {blocked} items, marked 'blocked' below:")
        rows += wrap(cause, 4)
    if shared:
        rows.append("")
    left_out = {status: [c["id"] for c in graded["checks"] if c["status"] == status] for status in LEFT_OUT}
    for c in (c for c in graded["checks"] if c["status"] not in LEFT_OUT):
        blocked = c["message"] in shared
        status = "blocked" if blocked else c["status"].replace("_", " ")
        which = "" if len(shared) < 2 or not blocked else f" ({shared.index(c['message']) + 1})"
        rows.append(f"{_points(c)}  {status + which:<13}  {c['id']}  {c['title']}")
        if c["status"] != "passed" and c["message"] and not blocked:
            rows += wrap(c["message"], 12)
    for status, ids in left_out.items():
        if ids:
            parts = collections.Counter(i.split(".")[0] for i in ids)
            rows += wrap(f"{LEFT_OUT[status]}: {len(ids)} items (" + ", ".join(f"{p} {n}" for p, n in parts.items())
                         + ")", 0)
    for warning in graded["warnings"]:
        rows += ["", *wrap(f"Warning: {warning}", 0)]
    rows.append(score_line(graded))
    return rows


def _points(check):
    if check["status"] not in GRADED:
        return "-".center(9)
    if check["bonus"]:
        return f"+{check['points']:g} bonus".rjust(9)
    return f"{check['points']:g}/{check['max_points']:g}".rjust(9)


def gradescope(graded: Grade, seconds: float) -> dict:
    """Gradescope's results.json: one test per rubric item, the same points."""
    tests = []
    for c in graded["checks"]:
        counted = c["status"] in GRADED
        test = {"name": f"{c['id']}: {c['title']}", "number": c["id"], "score": c["points"],
                "max_score": c["max_points"] if counted else 0.0, "output": c["message"], "visibility": "visible"}
        if counted:
            test["status"] = "passed" if c["status"] == "passed" else "failed"
        tests.append(test)
    return {"score": graded["score"], "max_score": graded["max_score"], "execution_time": round(seconds, 2),
            "output": score_line(graded), "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}


def classroom(graded: Grade, rubric: Rubric) -> dict[str, dict]:
    """GitHub Classroom's grading reporter, one runner per graded item: {runner id: result}. The
    reporter's table scores a runner as (tests passed / tests) x max_score, so each runner's tests
    are its item's points in steps (one test, or one per partial-credit step); a bonus runner's
    max_score is its points (so the table shows them) and its status is `pass` unless it errs, so
    that the run is green whenever every required point is earned."""
    runners = {}
    for c in graded["checks"]:
        if c["status"] not in GRADED and c["status"] != NOT_ATTEMPTED:
            continue
        item = rubric.items[c["id"]]
        count = round(item.points / item.partial) if item.partial else 1
        earned = round(c["points"] / (item.points / count)) if item.points else int(c["status"] == "passed")
        failing = "error" if c["status"] == "error" else "fail"
        tests = [{"name": c["title"] if count == 1 else f"{c['title']} ({n + 1}/{count})",
                  "status": "pass" if n < earned else failing, "score": item.points / count if n < earned else 0,
                  "message": c["message"] or "ok", "line_no": 0, "test_code": ""} for n in range(count)]
        status = "error" if c["status"] == "error" else "pass" if item.bonus or c["status"] == "passed" else "fail"
        runners[runner_id(c["id"])] = {"version": 1, "status": status, "max_score": item.points, "tests": tests}
    return runners


def runner_id(item_id: str) -> str:
    """A reporter runner's id: letters and digits only (the reporter's rule), from the item's id."""
    return "".join(ch for ch in item_id.lower() if ch.isalnum())


UNITS = 2  # Classroom 50 scores in whole numbers: its unit is half a point (the questions' step)
BODY_CAP = 120_000  # characters of a Release body (GitHub refuses one over 125,000)
SUMMARY_CAP = 140  # characters of a commit status's description (GitHub refuses more)


def classroom50(graded: Grade, rubric: Rubric) -> dict:
    """Classroom 50's scores (`score`, `max-score`, `tests`), which must be whole numbers with no
    score above its maximum: one test per rubric item, in half points (UNITS per point). A bonus
    item's maximum is its points, counted in both totals (so 120 / 110 reads 240 / 240); an item not
    graded here is 0 / 0. A test passes when its item lost nothing."""
    tests = []
    for c in graded["checks"]:
        item = rubric.items[c["id"]]
        most = 0.0 if c["status"] == NOT_GRADED else item.points if item.bonus else c["max_points"]
        tests.append({"test-name": f"{c['id']}: {c['title']}", "passed": c["status"] in ("passed", NOT_GRADED),
                      "score": _units(c["points"]), "max-score": _units(most)})
    return {"score": sum(t["score"] for t in tests), "max-score": sum(t["max-score"] for t in tests), "tests": tests}


def _units(points):
    units = round(points * UNITS)
    if units != points * UNITS:
        raise ValueError(f"{points:g} points is not a whole number of Classroom 50's units (1/{UNITS} point)")
    return units


def classroom50_body(graded: Grade, scores: dict, notes: typing.Sequence[str] = ()) -> str:
    """The Release body: the score line, what Classroom 50's numbers mean, `notes`, then one row
    per item with every reason; cut to BODY_CAP characters."""
    units = (f"{scores['score']} / {scores['max-score']} in Classroom 50 is {scores['score'] / UNITS:g} / "
             f"{scores['max-score'] / UNITS:g} points (it counts half points; a bonus counts in both totals).")
    text = summary(graded).replace("\n", f"\n\n{units}\n" + "".join(f"\n{n}\n" for n in notes), 1)
    cut = "\n\n(cut here: the rest is in the grading step's log)\n"
    return text if len(text) <= BODY_CAP else text[:BODY_CAP - len(cut)] + cut


def summary(graded: Grade) -> str:
    """The Markdown the Classroom workflow shows on the run's page: one row per item, the score."""
    rows = ["| item | points | status | reason |", "|---|---|---|---|"]
    for c in graded["checks"]:
        reason = " ".join(c["message"].split()).replace("|", "\\|") if c["status"] != "passed" else ""
        rows.append(f"| {c['title']} | {_points(c).strip()} | {c['status'].replace('_', ' ')} | {reason} |")
    return "\n".join([f"### {score_line(graded)}", "", *rows]) + "\n"
