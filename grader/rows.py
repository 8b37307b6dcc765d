"""One student's line of a gradebook, typed: grades.csv, class.json, report.html and the LMS files
are all made from the same rows, so they cannot disagree."""
import csv
import dataclasses
import json
import pathlib

from grader import report

COLUMNS = ("student", "identifier", "score", "max")  # then one per rubric item, then TAIL
TAIL = ("mode", "isolation", "status", "reason", "grader")
NOT_ON_ROSTER = "(not on the roster)"
ABSENT = "on the roster, but no submission was found"
UNGRADED = ("timeout", "crashed")  # the grader made no grade (its failure, not the student's)
NOT_JUDGED = (*UNGRADED, "no-submission", "invalid-submission")  # every item lost for the row's one reason


@dataclasses.dataclass(frozen=True)
class Mark:
    """One item of one student's grade."""
    id: str
    title: str
    points: float
    max_points: float  # 0 for a bonus item: extra credit
    bonus: bool
    status: str  # report.Status
    message: str

    @property
    def graded(self) -> bool:
        return self.status in report.GRADED


@dataclasses.dataclass(frozen=True)
class Row:
    student: str
    identifier: str  # the roster's name for the student; "" without a roster
    score: float  # the bonus counted, as the rubric says
    max_score: float | None  # None: a roster student without a submission
    bonus: float  # the bonus part of the score
    mode: str
    isolation: str
    status: str  # graded, timeout, crashed, no-submission, invalid-submission, tamper-suspected
    reason: str
    grader: str
    marks: tuple[Mark, ...] = ()

    def cells(self, rubric_ids: list[str]) -> list[str]:
        """The row as grades.csv writes it: an item not graded for the student is left empty."""
        points = {m.id: f"{m.points:g}" for m in self.marks if m.graded}
        return [self.student, self.identifier, f"{self.score:g}",
                "" if self.max_score is None else f"{self.max_score:g}", *(points.get(i, "") for i in rubric_ids),
                self.mode, self.isolation, self.status, self.reason, self.grader]


def from_result(result: dict, identifier: str = "") -> Row:
    """The row of one results/NAME.json."""
    grade = result["grade"]
    marks = tuple(Mark(c["id"], c["title"], c["points"], c["max_points"], c["bonus"], c["status"], c["message"])
                  for c in grade["checks"])
    return Row(result["student"], identifier, grade["score"], grade["max_score"], grade.get("bonus", 0.0),
               grade["mode"], grade.get("isolation", ""), result["status"], result["reason"], result.get("grader", ""),
               marks)


def absent(username: str, identifier: str) -> Row:
    """The row of a roster student without a submission."""
    return Row(username, identifier, 0.0, None, 0.0, "", "", "no-submission", ABSENT, "")


def header(rubric_ids: list[str]) -> list[str]:
    return [*COLUMNS, *rubric_ids, *TAIL]


def read(out: pathlib.Path) -> list[Row]:
    """The rows of a published gradebook, as publish made them: grades.json's results, with the
    identifiers and the roster's absent students of grades.csv. OSError or ValueError when it
    is not one."""
    out = pathlib.Path(out)
    results = {r["student"]: r for r in json.loads((out / "grades.json").read_text())}
    with open(out / "grades.csv", newline="", encoding="utf-8") as handle:
        lines = list(csv.DictReader(handle))
    if lines and not set(COLUMNS + TAIL) <= set(lines[0]):
        raise ValueError("grades.csv lacks the gradebook's columns")
    return [from_result(results[line["student"]], line["identifier"]) if line["student"] in results
            else absent(line["student"], line["identifier"]) for line in lines]
