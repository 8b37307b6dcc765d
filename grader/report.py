"""What a grading run reports: the grade (the one dict every output is made from) and its table."""
import dataclasses
import textwrap

STATUSES = ("passed", "failed", "error", "not_graded")


@dataclasses.dataclass(frozen=True)
class Result:
    status: str
    message: str = ""


def grade(rubric, results, mode, submission):
    """The `--grade-json` shape. Items not graded in this mode count toward neither score."""
    checks = []
    for item in rubric.items.values():
        result = results.get(item.id, Result("not_graded", "not run in this session (deselected?)"))
        checks.append(
            {
                "id": item.id,
                "title": item.title,
                "points": item.points if result.status == "passed" else 0.0,
                "max_points": item.points,
                "status": result.status,
                "message": result.message,
            }
        )
    return {
        "score": sum(c["points"] for c in checks),
        "max_score": sum(c["max_points"] for c in checks if c["status"] != "not_graded"),
        "mode": mode,
        "submission": str(submission),
        "checks": checks,
    }


def table(graded, width=100):
    """One row per item (points, status, id), the reason under any item that lost points."""
    rows = []
    for c in graded["checks"]:
        points = "   -   " if c["status"] == "not_graded" else f"{c['points']:g}/{c['max_points']:g}".rjust(7)
        rows.append(f"{points}  {c['status']:<10}  {c['id']}  {c['title']}")
        if c["status"] != "passed" and c["message"]:
            rows += textwrap.wrap(c["message"], width - 12, initial_indent=" " * 12, subsequent_indent=" " * 12)
    rows.append(f"Score: {graded['score']:g} / {graded['max_score']:g}  ({graded['mode']} mode)")
    return rows
