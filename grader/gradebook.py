"""A class's gradebook on disk, and what decides it: results/NAME.json (one per student, with the
hashes of what produced it), grades.csv, grades.json, class.json and report.html made from them,
the roster beside them, and shards of a class joined into one gradebook.

A result is current when both hashes still hold: the student's files (model.py, answers.yaml) and
the grader (its code, the rubric and the answer key). A rerun grades exactly the students whose
result is missing or not current.
"""
import csv
import dataclasses
import datetime
import hashlib
import io
import json
import os
import pathlib
import shutil

from grader import ROOT, classpage, classview, rows
from grader.sandbox import files

FOLDERS = ("results", "feedback", "logs", "gradescope")  # per student, NAME.<ext> in each


class GradebookError(Exception):
    """The gradebook cannot be made as asked; the message says why, in one line."""


def _digest(parts):
    digest = hashlib.sha256()
    for name, data in parts:
        digest.update(f"{name}\0{len(data)}\0".encode())
        digest.update(data)
    return digest.hexdigest()[:16]


def grader_hash(rubric) -> str:
    """The grader that grades: its code, the rubric and the answer key (absent: said so)."""
    code = sorted(p for p in (ROOT / "grader").rglob("*.py")) + [ROOT / "conftest.py"]
    parts = [(str(p.relative_to(ROOT)), p.read_bytes()) for p in code]
    parts.append(("rubric", rubric.path.read_bytes()))
    parts.append(("key", rubric.answer_key.read_bytes() if rubric.answer_key.is_file() else b"(none)"))
    return _digest(parts)


def submission_hash(student) -> str:
    """What the student submitted, read as the batch reads it (no links, capped): a file that
    cannot be read counts by the reason why."""
    parts = []
    for what, path, cap in (("model.py", student.model, files.MODEL_CAP),
                            ("answers.yaml", student.answers, files.ANSWERS_CAP)):
        try:
            text = files.read_text(path, cap, what, student.folder) if path is not None else "(none)"
        except files.InvalidFile as error:
            text = f"(unreadable: {error})"
        parts.append((what, text.encode()))
    return _digest(parts)


@dataclasses.dataclass(frozen=True)
class Plan:
    grade: list  # the batch's Students to grade now
    kept: int  # current results left as they are
    regraded: int  # results that were there but are not current (or forced)
    added: int  # students without a result

    def describe(self):
        return f"kept {self.kept}, regrading {self.regraded}, adding {self.added}"


def plan(students: list, out: pathlib.Path, grader: str, force: bool = False, only: set[str] | None = None) -> Plan:
    """Which students to grade: those without a current result (all with `force`; with `only`,
    exactly the names given)."""
    todo, kept, regraded, added = [], 0, 0, 0
    for student in students:
        previous = _result(out, student.name)
        if previous is None:
            added += 1
            todo.append(student)
        elif (only is not None and student.name in only) or (only is None and (
                force or previous.get("grader") != grader or previous.get("submission") != submission_hash(student))):
            regraded += 1
            todo.append(student)
        else:
            kept += 1
    return Plan(todo, kept, regraded, added)


def _result(out, name):
    try:
        return json.loads((pathlib.Path(out) / "results" / f"{name}.json").read_text())
    except (OSError, ValueError):
        return None


class Roster:
    """GitHub Classroom's roster CSV: each student's `identifier` (the course's name for them)
    beside their `github_username`. A submission folder is a student's when it is named after
    their GitHub name, alone or as Classroom names repositories (`assignment-username`)."""

    def __init__(self, path):
        try:
            with open(path, newline="", encoding="utf-8-sig") as handle:
                rows = list(csv.DictReader(handle))
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            why = getattr(error, "strerror", None) or error
            raise GradebookError(f"cannot read the roster {path}: {why}") from None
        if not rows or not {"identifier", "github_username"} <= set(rows[0]):
            raise GradebookError(f"the roster {path} needs the columns identifier and github_username "
                                 "(GitHub Classroom's roster download)")
        self.identifiers = {r["github_username"].strip(): r["identifier"].strip() for r in rows}

    def username(self, student: str) -> str | None:
        matches = [u for u in self.identifiers if u and (student == u or student.lower().endswith("-" + u.lower()))]
        return max(matches, key=len) if matches else None


def publish(out: pathlib.Path, rubric_ids: list[str], roster: Roster | None = None) -> None:
    """grades.csv, grades.json, class.json and report.html from every result in `out`, each
    replaced in one step. With a roster, each row carries the student's identifier, a submission
    not on the roster says so, and each roster student without a submission gets a row of its own."""
    out = pathlib.Path(out)
    results = [json.loads(p.read_text()) for p in sorted((out / "results").glob("*.json"))]
    table, seen = [], set()
    for r in results:
        username = roster.username(r["student"]) if roster else None
        seen.add(username)
        identifier = "" if roster is None else roster.identifiers[username] if username else rows.NOT_ON_ROSTER
        table.append(rows.from_result(r, identifier))
    table += [rows.absent(username, identifier) for username, identifier
              in sorted((roster.identifiers if roster else {}).items()) if username not in seen]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(rows.header(rubric_ids))
    writer.writerows(row.cells(rubric_ids) for row in table)
    write_atomically(out / "grades.csv", text.getvalue())
    write_atomically(out / "grades.json", json.dumps(results, indent=2) + "\n")
    view = classview.summarise(table, out, datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    write_atomically(out / "class.json", json.dumps(view.as_json(), indent=2) + "\n")
    write_atomically(out / "report.html", classpage.page(view))


def merge(shards: list[pathlib.Path], out: pathlib.Path, roster: Roster | None = None) -> int:
    """Join the gradebooks of a class's shards into `out`, as one batch of the whole class would
    have written it. Refuses shards graded by different graders, and a student graded in two."""
    out = pathlib.Path(out)
    graders, owners, rubric_ids = set(), {}, None
    for shard in map(pathlib.Path, shards):
        results = sorted((shard / "results").glob("*.json"))
        if not (shard / "results").is_dir():
            raise GradebookError(f"{shard} is not a batch's output folder (it has no results/)")
        for path in results:
            result = json.loads(path.read_text())
            graders.add(result.get("grader"))
            if path.stem in owners:
                raise GradebookError(f"{path.stem} was graded in both {owners[path.stem]} and {shard}")
            owners[path.stem] = shard
            rubric_ids = rubric_ids or [c["id"] for c in result["grade"]["checks"]]
    if len(graders) > 1:
        raise GradebookError("the shards were graded by different graders (code, rubric or key): regrade them alike")
    for folder in FOLDERS:
        (out / folder).mkdir(parents=True, exist_ok=True)
    for name, shard in sorted(owners.items()):
        for folder in FOLDERS:
            for path in (shard / folder).glob(f"{name}.*"):
                shutil.copy2(path, out / folder / path.name)
    publish(out, rubric_ids or [], roster)
    return len(owners)


def write_atomically(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8", errors="backslashreplace")  # a student's text never ends the batch
    os.replace(tmp, path)
