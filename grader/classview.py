"""The class at a glance, from the gradebook's rows (never by running anything): how the scores
spread, which items the class missed and why (reasons grouped by cause), who was flagged. It is
what class.json holds and what report.html shows."""
import collections
import dataclasses
import math
import pathlib
import statistics

from grader import reasons
from grader.rows import NOT_JUDGED, Row

GROUPS_PER_ITEM = 8  # the largest causes of an item; the rest are counted together
NICE_WIDTHS = (1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000)
MOST_BINS = 12


@dataclasses.dataclass(frozen=True)
class Student:
    name: str
    identifier: str
    score: float
    max_score: float | None
    status: str
    reason: str
    feedback: str | None  # the feedback file's path from the gradebook's folder; None: there is none
    log: str | None


@dataclasses.dataclass(frozen=True)
class Item:
    id: str
    title: str
    points: float  # its full points (a bonus item's as earned by those who passed it)
    bonus: bool
    graded: int  # students it was graded for
    earned: int  # students with its full points
    mean: float  # points per student of the class; not graded counts 0
    reasons: tuple[reasons.Group, ...]  # why the others did not earn it, largest cause first
    other: int  # students whose causes are past GROUPS_PER_ITEM
    flagged: int  # students who did not earn it because nothing of theirs was judged (their status says why)

    def missed(self, students: int) -> int:
        return students - self.earned


@dataclasses.dataclass(frozen=True)
class Bin:
    low: float
    high: float  # exclusive, but for the last bin
    count: int


@dataclasses.dataclass(frozen=True)
class ClassView:
    students: tuple[Student, ...]  # by name
    statuses: dict[str, int]  # largest first
    mean: float
    median: float
    lowest: float
    highest: float
    max_score: float  # the required maximum
    histogram: tuple[Bin, ...]
    items: tuple[Item, ...]  # in the rubric's order
    graders: tuple[str, ...]
    modes: tuple[str, ...]
    isolations: tuple[str, ...]
    date: str

    @property
    def flagged(self) -> list[Student]:
        return [s for s in self.students if s.status != "graded"]

    def most_missed(self) -> list[Item]:
        return sorted(self.items, key=lambda item: -item.missed(len(self.students)))

    def as_json(self) -> dict:
        """class.json."""
        return {
            "students": len(self.students), "statuses": self.statuses,
            "score": {"mean": self.mean, "median": self.median, "min": self.lowest, "max": self.highest,
                      "max_score": self.max_score,
                      "histogram": [{"from": b.low, "to": b.high, "count": b.count} for b in self.histogram]},
            "items": {i.id: {"title": i.title, "points": i.points, "bonus": i.bonus, "graded": i.graded,
                             "earned": i.earned, "mean": i.mean,
                             "reasons": [{"reason": g.reason, "count": g.count, "students": list(g.students)}
                                         for g in i.reasons],
                             "other_reasons": i.other, "flagged": i.flagged} for i in self.items},
            "flagged": [{"student": s.name, "status": s.status, "reason": reasons.shorten(s.reason), "log": s.log}
                        for s in self.flagged],
            "grader": list(self.graders), "mode": list(self.modes), "isolation": list(self.isolations),
            "date": self.date,
        }


def summarise(rows: list[Row], folder: pathlib.Path, date: str) -> ClassView:
    """The view of `rows`, a gradebook in `folder` (where each student's feedback and log are)."""
    students = tuple(_student(row, pathlib.Path(folder)) for row in sorted(rows, key=lambda r: r.student))
    scores = [row.score for row in rows]
    figures = scores or [0.0]  # an empty class: its figures are 0
    max_score = max((row.max_score for row in rows if row.max_score is not None), default=0.0)
    statuses = collections.Counter(row.status for row in rows)
    return ClassView(
        students=students, statuses=dict(sorted(statuses.items(), key=lambda kv: (-kv[1], kv[0]))),
        mean=statistics.fmean(figures), median=statistics.median(figures), lowest=min(figures),
        highest=max(figures), max_score=max_score, histogram=histogram(scores, max(max_score, *figures)),
        items=tuple(_item(item_id, rows) for item_id in _item_ids(rows)),
        graders=_distinct(row.grader for row in rows), modes=_distinct(row.mode for row in rows),
        isolations=_distinct(row.isolation for row in rows), date=date)


def histogram(scores: list[float], top: float) -> tuple[Bin, ...]:
    """Bins of a round width from 0 to `top`, at most MOST_BINS of them."""
    width = next((w for w in NICE_WIDTHS if top / w <= MOST_BINS), math.ceil(top / MOST_BINS) or 1)
    count = max(1, math.ceil(top / width))
    bins = [0] * count
    for score in scores:
        bins[min(count - 1, max(0, int(score // width)))] += 1
    return tuple(Bin(n * width, (n + 1) * width, c) for n, c in enumerate(bins))


def _student(row, folder):
    def link(path):
        return path if (folder / path).is_file() else None
    return Student(row.student, row.identifier, row.score, row.max_score, row.status, row.reason,
                   link(f"feedback/{row.student}.md"), link(f"logs/{row.student}.log"))


def _item_ids(rows):
    return list(dict.fromkeys(m.id for row in rows for m in row.marks))


def _item(item_id, rows):
    marks = {row.student: next((m for m in row.marks if m.id == item_id), None) for row in rows}
    known = [m for m in marks.values() if m is not None]
    passed = [m for m in known if m.status == "passed"]
    missed = [row for row in rows if marks[row.student] is None or marks[row.student].status != "passed"]
    lost = {row.student: marks[row.student].message or marks[row.student].status.replace("_", " ")
            for row in missed if row.status not in NOT_JUDGED}
    groups, other = reasons.group(lost, GROUPS_PER_ITEM)
    return Item(item_id, known[0].title, max([known[0].max_points, *(m.points for m in passed)]), known[0].bonus,
                sum(m.graded for m in known), len(passed), sum(m.points for m in known) / max(1, len(rows)),
                tuple(groups), other, len(missed) - len(lost))


def _distinct(values):
    return tuple(sorted({v for v in values if v}))
