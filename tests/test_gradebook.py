"""A TA's term: reruns regrade exactly what changed, shards join into the gradebook one batch
would write, and the roster names every student, with or without a submission."""
import csv
import json
import shutil

import pytest
import yaml
from corpus import ROOT, write
from helpers import fast_rubric, python_m

from grader import gradebook
from grader.batch import in_shard

NAMES = ("alice", "bob", "carol", "dave", "erin")


def batch(*args):
    run = python_m("grader.batch", *args)
    assert run.returncode == 0, run.stderr
    return run.stderr


def outcome(result):
    """A result without the words of its messages, which quote what was measured in that run."""
    checks = [(c["id"], c["status"], c["points"]) for c in result["grade"]["checks"]]
    return result["student"], result["status"], result["grader"], result["submission"], checks


def grouped(view):
    """class.json without its date and the words of its reasons (one student's, as a representative)."""
    items = {i: (item["earned"], item["mean"], [g["students"] for g in item["reasons"]])
             for i, item in view["items"].items()}
    return {k: v for k, v in view.items() if k not in ("date", "items")}, items


def rows(out):
    return {r["student"]: r for r in csv.DictReader((out / "grades.csv").open())}


@pytest.fixture()
def klass(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    for name, bug in zip(NAMES, ("no_sync", "bare_sync", "fixed_lr", "made_up_time", "target_on_cpu")):
        shutil.copy(write(bug, tmp_path), folder / f"{name}.py")
        shutil.copy(ROOT / "solutions" / "answers.yaml", folder / f"{name}.yaml")
    return folder


def test_a_rerun_regrades_exactly_what_changed(klass, tmp_path):
    rubric, out = fast_rubric(tmp_path), tmp_path / "out"
    assert "kept 0, regrading 0, adding 5" in batch(klass, "--out", out, "-j", 2, "--rubric", rubric)
    assert "kept 5, regrading 0, adding 0" in batch(klass, "--out", out, "-j", 2, "--rubric", rubric)
    shutil.copy(ROOT / "solutions" / "model.py", klass / "bob.py")  # bob resubmits, fixed
    assert "kept 4, regrading 1, adding 0" in batch(klass, "--out", out, "-j", 2, "--rubric", rubric)
    assert rows(out)["bob"]["part4.sync_covers_output_gpu"] == "4"
    before = rows(out)["alice"]["grader"]
    data = yaml.safe_load(rubric.read_text())  # the TA fixes a point value
    next(i for i in data["items"] if i["id"] == "part4.sync_covers_output_gpu")["points"] = 5
    rubric.write_text(yaml.safe_dump(data))
    assert "kept 0, regrading 5, adding 0" in batch(klass, "--out", out, "-j", 2, "--rubric", rubric)
    assert rows(out)["alice"]["grader"] != before and rows(out)["bob"]["part4.sync_covers_output_gpu"] == "5"
    assert "kept 4, regrading 1, adding 0" in batch(klass, "--out", out, "--rubric", rubric, "--only", "carol")
    assert "kept 0, regrading 5, adding 0" in batch(klass, "--out", out, "-j", 2, "--rubric", rubric, "--force")


def test_shards_merge_into_the_gradebook_of_one_batch(klass, tmp_path):
    rubric = fast_rubric(tmp_path)
    batch(klass, "--out", tmp_path / "whole", "-j", 2, "--rubric", rubric)
    shards = [tmp_path / f"shard{k}" for k in (1, 2, 3)]
    for k, shard in enumerate(shards, 1):
        batch(klass, "--out", shard, "-j", 2, "--rubric", rubric, "--shard", f"{k}/3")
    assert sum(len(list((s / "results").glob("*.json"))) for s in shards) == len(NAMES)
    batch("merge", *shards, "--out", tmp_path / "merged")
    assert (tmp_path / "merged" / "grades.csv").read_text() == (tmp_path / "whole" / "grades.csv").read_text()
    merged, whole = (json.loads((tmp_path / f / "grades.json").read_text()) for f in ("merged", "whole"))
    assert [outcome(r) for r in merged] == [outcome(r) for r in whole]  # the wording of a timing may differ
    merged, whole = (json.loads((tmp_path / f / "class.json").read_text()) for f in ("merged", "whole"))
    assert grouped(merged) == grouped(whole) and (tmp_path / "merged" / "report.html").is_file()
    assert "kept" in batch(klass, "--out", shards[0], "--rubric", rubric, "--shard", "1/3")  # a rerun resumes


def test_the_roster_names_every_student(klass, tmp_path):
    for name in NAMES:  # as GitHub Classroom names the repositories it downloads
        (klass / f"{name}.py").rename(klass / f"lab8-{name}.py")
        (klass / f"{name}.yaml").rename(klass / f"lab8-{name}.yaml")
    roster = tmp_path / "roster.csv"
    roster.write_text('"identifier","github_username","github_id","name"\n'
                      + "".join(f'"s{n}@uni.edu","{name}","{n}","{name.title()}"\n' for n, name in enumerate(NAMES[1:]))
                      + '"s9@uni.edu","frank","9","Frank"\n')
    out = tmp_path / "out"
    batch(klass, "--out", out, "-j", 2, "--rubric", fast_rubric(tmp_path), "--roster", roster)
    graded = rows(out)
    assert graded["lab8-bob"]["identifier"] == "s0@uni.edu" and graded["lab8-erin"]["identifier"] == "s3@uni.edu"
    assert graded["lab8-alice"]["identifier"] == "(not on the roster)"
    assert (graded["frank"]["identifier"], graded["frank"]["status"]) == ("s9@uni.edu", "no-submission")


def test_a_roster_without_its_columns_is_one_line(klass, tmp_path):
    (tmp_path / "roster.csv").write_text("name,email\nA,a@b\n")
    run = python_m("grader.batch", klass, "--out", tmp_path / "out", "--roster", tmp_path / "roster.csv")
    assert run.returncode == 2 and "needs the columns identifier and github_username" in run.stderr


def test_shards_split_by_name_alone():
    names = [f"student{n}" for n in range(300)]
    owners = [[k for k in (1, 2, 3) if in_shard(name, (k, 3))] for name in names]
    assert all(len(o) == 1 for o in owners) and all(60 < sum(o == [k] for o in owners) < 140 for k in (1, 2, 3))


def test_merge_refuses_a_student_graded_twice(tmp_path):
    for shard in ("a", "b"):
        (tmp_path / shard / "results").mkdir(parents=True)
        (tmp_path / shard / "results" / "alice.json").write_text('{"grader": "x", "grade": {"checks": []}}')
    with pytest.raises(gradebook.GradebookError, match="alice was graded in both"):
        gradebook.merge([tmp_path / "a", tmp_path / "b"], tmp_path / "out")
