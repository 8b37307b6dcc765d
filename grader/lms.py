"""Grades into the course's LMS, from the gradebook's rows: the lab's column of a Canvas gradebook
export filled in (every other row and column as exported), or Moodle's grade-import CSV. A student
without a grade is left empty, never given a zero, and named: one the gradebook does not know, or
one the grader could not grade (a timeout, a crash: the grader's failure, not the student's)."""
import csv
import dataclasses
import io
import pathlib

from grader.rows import NOT_ON_ROSTER, UNGRADED, Row

# A student's names in Canvas. Not its "ID": Canvas's own number, which a student number may equal.
CANVAS_KEYS = ("SIS Login ID", "SIS User ID", "Login ID", "Email")


class ExportError(Exception):
    """The LMS file cannot be made as asked; the message says why, in one line."""


@dataclasses.dataclass(frozen=True)
class Export:
    text: str  # the file the LMS imports
    filled: int
    empty: tuple[str, ...]  # students of the LMS file left without a grade, each with why
    unmatched: tuple[str, ...]  # gradebook students that are not in the LMS file


def points(row: Row, bonus: bool) -> str:
    """The grade written for `row`: its score, with or without the bonus; "" when there is none."""
    if row.status in UNGRADED:
        return ""
    return f"{row.score if bonus else row.score - row.bonus:g}"


def canvas(rows: list[Row], gradebook: pathlib.Path, column: str, bonus: bool) -> Export:
    """`gradebook` (Canvas's export) with `column` (its name, with or without Canvas's " (id)")
    filled in for every student matched by a login or SIS column to a row's identifier or name."""
    table = _read_csv(gradebook)
    header = table[0]
    where = [n for n, name in enumerate(header) if name.strip() == column or name.rsplit(" (", 1)[0] == column]
    if len(where) != 1:
        shown = ", ".join(repr(h) for h in header[:30])
        raise ExportError(f"{gradebook} has {'no' if not where else 'more than one'} column {column!r}; "
                          f"its columns: {shown}")
    target, keys = where[0], [n for n, name in enumerate(header) if name.strip() in CANVAS_KEYS]
    canvas_id = next((n for n, name in enumerate(header) if name.strip() == "ID"), None)
    if not keys:
        raise ExportError(f"{gradebook} has none of Canvas's student columns ({', '.join(CANVAS_KEYS)})")
    filled, empty, used, known = 0, [], set(), [(row, _names(row)) for row in rows]
    for line in table[1:]:
        names = {line[n].strip().lower() for n in keys if n < len(line) and line[n].strip()}
        student = names or (canvas_id is not None and canvas_id < len(line) and line[canvas_id].strip())
        if not student or line[0].strip() == "Points Possible" or target >= len(line):
            continue  # a header row: Points Possible, muted or posting policy
        found = [row for row, its in known if names & its]
        who = line[0].strip() or ", ".join(sorted(names)) or f"ID {line[canvas_id]}"
        if len(found) != 1:
            line[target] = ""
            empty.append(f"{who}: {'no row in the gradebook' if not found else 'matches ' + _both(found)}")
            continue
        used.add(found[0].student)
        line[target] = points(found[0], bonus)
        if line[target]:
            filled += 1
        else:
            empty.append(f"{who}: {found[0].status}, {found[0].reason}")
    return Export(_write_csv(table), filled, tuple(empty), tuple(r.student for r in rows if r.student not in used))


def moodle(rows: list[Row], column: str, bonus: bool) -> Export:
    """Moodle's grade import: an identifier column (the roster's, else the submission's name; map it
    to the matching user field on import) and the grade item's column."""
    table, empty = [["identifier", column]], []
    for row in rows:
        identifier = row.identifier if row.identifier not in ("", NOT_ON_ROSTER) else row.student
        table.append([identifier, points(row, bonus)])
        if not table[-1][1]:
            empty.append(f"{row.student}: {row.status}, {row.reason}")
    unmatched = tuple(r.student for r in rows if r.identifier == NOT_ON_ROSTER)
    return Export(_write_csv(table), len(rows) - len(empty), tuple(empty), unmatched)


def _names(row):
    """What Canvas may call the student of `row`: the roster's identifier (and an e-mail's user),
    the submission's name, or its GitHub name in a Classroom repository's (`lab8-alice`)."""
    names = {row.student.lower()}
    if row.identifier and row.identifier != NOT_ON_ROSTER:
        names |= {row.identifier.lower(), row.identifier.lower().split("@")[0]}
    if "-" in row.student:
        names.add(row.student.lower().rsplit("-", 1)[1])
    return names


def _both(found):
    return " and ".join(r.student for r in found[:2]) + (f" and {len(found) - 2} more" if len(found) > 2 else "")


def _read_csv(path):
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            table = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ExportError(f"cannot read {path}: {getattr(error, 'strerror', None) or error}") from None
    if not table:
        raise ExportError(f"{path} is empty")
    return table


def _write_csv(table):
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(table)
    return text.getvalue()
