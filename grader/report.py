"""What a grading run reports: the grade (the one dict every output is made from) and its table."""
import dataclasses
import textwrap


@dataclasses.dataclass(frozen=True)
class Result:
    status: str
    message: str = ""


def grade(rubric, results, mode, submission, isolation):
    """The `--grade-json` shape. Items not graded in this mode count toward neither score."""
    checks = []
    for item in rubric.items.values():
        result = results.get(item.id, Result("not_graded", "not run in this session (deselected?)"))
        checks.append(
            {
                "id": item.id,
                "title": item.title,
                "points": item.points if result.status == "passed" else 0.0,
                "max_points": item.max_points,
                "status": result.status,
                "message": result.message,
            }
        )
    return {
        "score": sum(c["points"] for c in checks),
        "max_score": sum(c["max_points"] for c in checks if c["status"] != "not_graded"),
        "mode": mode,
        "isolation": isolation,
        "submission": str(submission),
        "checks": checks,
    }


def table(graded, width=100):
    """One row per item (points, status, id), the reason under any item that lost points."""
    rows = []
    for c in graded["checks"]:
        if c["status"] == "not_graded":
            points = "   -   "
        elif c["max_points"]:
            points = f"{c['points']:g}/{c['max_points']:g}".rjust(7)
        else:
            points = f"+{c['points']:g} bonus".rjust(7)
        rows.append(f"{points}  {c['status']:<10}  {c['id']}  {c['title']}")
        if c["status"] != "passed" and c["message"]:
            rows += textwrap.wrap(c["message"], width - 12, initial_indent=" " * 12, subsequent_indent=" " * 12)
    rows.append(f"Score: {graded['score']:g} / {graded['max_score']:g}  ({graded['mode']} mode)")
    return rows


def gradescope(graded, seconds):
    """Gradescope's results.json: one test per rubric item, the same points."""
    tests = []
    for c in graded["checks"]:
        test = {"name": f"{c['id']}: {c['title']}", "number": c["id"], "score": c["points"],
                "max_score": 0.0 if c["status"] == "not_graded" else c["max_points"],
                "output": c["message"], "visibility": "visible"}
        if c["status"] != "not_graded":
            test["status"] = "passed" if c["status"] == "passed" else "failed"
        tests.append(test)
    return {"score": graded["score"], "max_score": graded["max_score"], "execution_time": round(seconds, 2),
            "output": f"Score: {graded['score']:g} / {graded['max_score']:g} ({graded['mode']} mode)",
            "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}


def classroom(graded):
    """GitHub Classroom's grading-reporter runner result (base64 this for `<RUNNER>_RESULTS`):
    one test per graded item, so the points it adds up are the grader's."""
    checks = [c for c in graded["checks"] if c["status"] != "not_graded"]
    status = {"passed": "pass", "failed": "fail", "error": "error"}
    overall = "error" if any(c["status"] == "error" for c in checks) else (
        "pass" if graded["score"] == graded["max_score"] else "fail")
    return {"version": 1, "status": overall, "max_score": graded["max_score"],
            "tests": [{"name": f"{c['id']}: {c['title']}", "status": status[c["status"]], "score": c["points"],
                       "message": c["message"] or "ok", "line_no": 0, "test_code": c["id"]} for c in checks]}
