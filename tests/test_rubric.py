"""rubric.yaml alone: what loads, what is refused and why, and the points an item gives."""
import pytest
import yaml
from corpus import ROOT

from grader import rubric

DATA = yaml.safe_load((ROOT / "rubric.yaml").read_text())


def load(tmp_path, edit=lambda data: None, **options):
    data = yaml.safe_load((ROOT / "rubric.yaml").read_text())
    edit(data)
    (tmp_path / "rubric.yaml").write_text(yaml.safe_dump(data))
    return rubric.load(tmp_path / "rubric.yaml", **options)


def test_the_project_rubric_loads_with_its_limits_and_key():
    lab = rubric.load(ROOT / "rubric.yaml")
    assert list(lab.items) == [i["id"] for i in DATA["items"]]
    assert lab.answer_key == ROOT / "solutions" / "answers.yaml" and "torch" in lab.allowed_imports
    assert lab.max_score == sum(i["points"] for i in DATA["items"] if not i.get("bonus"))


def test_an_answer_key_given_replaces_the_rubrics(tmp_path):
    assert load(tmp_path, answer_key=tmp_path / "key.yaml").answer_key == tmp_path / "key.yaml"


@pytest.mark.parametrize("edit, message", [
    (lambda r: r["items"].append(dict(r["items"][0])), "duplicate id"),
    (lambda r: r["items"][0].update(points=-1), "points must be a number >= 0"),
    (lambda r: r["items"][0].update(points=True), "points must be a number >= 0"),
    (lambda r: r["items"][0].update(modes=["gpu"]), "modes must be"),
    (lambda r: r["items"][0].update(bonus="yes"), "bonus must be true or false"),
    (lambda r: r["items"][0].update(partial=100), "partial must be a step"),
    (lambda r: r["items"][0].update(colour="red"), "unknown ['colour']"),
    (lambda r: r.update(items=[]), "no items"),
    (lambda r: r["limits"].update(memory_gib=0), "limits.memory_gib must be a positive number"),
    (lambda r: r.update(allowed_imports="torch"), "allowed_imports must be a list"),
    (lambda r: r.pop("answer_key"), "missing ['answer_key']"),
])
def test_a_bad_rubric_says_what_is_wrong(edit, message, tmp_path):
    with pytest.raises(rubric.RubricError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load(tmp_path, edit)


def test_checks_and_items_must_match_both_ways(tmp_path):
    lab = rubric.load(ROOT / "rubric.yaml")
    ids = list(lab.items)
    rubric.check_mapping(lab, ids)
    for wrong, message in ((ids[1:], "has no check"), (ids + ["part9.x"], "has no item"),
                           (ids + ids[:1], "claimed by more than one check")):
        with pytest.raises(rubric.RubricError, match=message):
            rubric.check_mapping(lab, wrong)


def test_credit_is_all_or_nothing_unless_partial():
    whole = rubric.Item("a", 8.0, "t", ("virtual",))
    stepped = rubric.Item("b", 5.0, "t", ("virtual",), partial=0.5)
    assert (whole.credit(1), whole.credit(0.99), whole.credit(0)) == (8.0, 0.0, 0.0)
    assert (stepped.credit(1), stepped.credit(0.7), stepped.credit(0.69), stepped.credit(-1)) == (5.0, 3.5, 3.0, 0.0)
