"""Grades into the LMS: a Canvas gradebook export with the lab's column filled in (its header rows
and other columns as exported), Moodle's grade import; read back by a CSV reader, from a gradebook
of known mistakes. Students without a grade are empty, never zero, and listed."""
import csv

import pytest
from helpers import ABSENT, python_m, synthetic_class

CANVAS = [
    ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Lab 7 (1001)", "Lab 8 (1002)", "Current Score"],
    ["    Points Possible", "", "", "", "", "100", "110", ""],
    ["", "", "", "", "", "", "Manual Posting", ""],
    ["Alice A", "11", "", "s0", "A", "91", "", "80"],  # the login: the roster identifier's user
    ["Bob B", "12", "s1@uni.edu", "bob.b", "A", "72", "", "60"],  # the SIS id: the roster identifier
    ["Mallory M", "s4", "", "", "B", "81", "", "70"],  # no login: Canvas's own ID is not erin's s4@uni.edu
    ["Carol C", "13", "", "carol", "B", "63", "", "50"],  # the login: her GitHub name
    ["Gina G", "14", "", "gina", "B", "54", "", "40"],  # timed out: no grade
    ["Ivan I", "15", "", "ivan", "B", "45", "", "30"],  # on the roster, no submission: 0
    ["Zed Z", "16", "s99", "zed", "B", "36", "5", "20"],  # not in the gradebook at all
]


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    out = tmp_path_factory.mktemp("lms") / "out"
    synthetic_class(out)
    with open(out.parent / "canvas.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(CANVAS)
    return out


def grades(out):
    return {r["student"]: r for r in csv.DictReader((out / "grades.csv").open(encoding="utf-8"))}


def export(*args):
    run = python_m("grader.batch", "export", *args)
    assert run.returncode == 0, run.stderr
    return run.stdout


@pytest.mark.parametrize("bonus", [True, False])
def test_canvas_gets_the_labs_column_and_nothing_else_changes(out, bonus):
    target = out.parent / f"canvas-{bonus}.csv"
    said = export(out, "--canvas", out.parent / "canvas.csv", "--column", "Lab 8", "--to", target,
                  *(() if bonus else ("--no-bonus",)))
    back = list(csv.reader(target.open(encoding="utf-8")))
    assert len(back) == len(CANVAS) and all(len(row) == len(CANVAS[0]) for row in back)
    lab = CANVAS[0].index("Lab 8 (1002)")
    assert back[:3] == CANVAS[:3]  # the header rows: Points Possible, the posting policy
    assert [row[:lab] + row[lab + 1:] for row in back] == [row[:lab] + row[lab + 1:] for row in CANVAS]
    book = grades(out)

    def points(name):
        return float(book[name]["score"]) - (0 if bonus else float(book[name]["part6.pipelined"] or 0))
    filled = {row[0]: row[lab] for row in back[3:]}
    assert {k: float(v) for k, v in filled.items() if v} == {
        "Alice A": points("alice"), "Bob B": points("bob"), "Carol C": points("carol"), "Ivan I": 0}
    assert points("alice") == (120 if bonus else 110)
    assert filled["Gina G"] == "" and filled["Zed Z"] == ""  # never zero
    assert filled["Mallory M"] == ""
    assert "Gina G: timeout" in said and "Zed Z: no row in the gradebook" in said and "Mallory M: no row" in said
    assert "  dave" in said.split("not in this file:")[1]  # graded, but not in Canvas


def test_moodle_import_has_an_identifier_and_a_grade(out):
    export(out, "--moodle", "--column", "Lab 8")
    back = list(csv.DictReader((out / "moodle.csv").open(encoding="utf-8")))
    book = grades(out)
    assert [r["identifier"] for r in back] == [book[name]["identifier"] for name in book]
    for row, name in zip(back, book):
        want = "" if book[name]["status"] == "timeout" else float(book[name]["score"])
        assert (float(row["Lab 8"]) if row["Lab 8"] else "") == want, name
    assert book[ABSENT]["identifier"] in {r["identifier"] for r in back}


@pytest.mark.parametrize("args, says", [
    (("--moodle",), "is not a batch's gradebook"),
    (("--canvas", "missing.csv", "--column", "Lab 8"), "cannot read missing.csv"),
    (("--canvas", "CANVAS", "--column", "Lab 9"), "has no column 'Lab 9'"),
    (("--canvas", "CANVAS"), "--canvas needs --column"),
])
def test_a_bad_path_or_column_is_one_line(out, tmp_path, args, says):
    folder = tmp_path if args == ("--moodle",) else out
    args = [str(out.parent / "canvas.csv") if a == "CANVAS" else a for a in args]
    run = python_m("grader.batch", "export", folder, *args)
    assert run.returncode == 2 and says in run.stderr and "Traceback" not in run.stderr, run.stderr
