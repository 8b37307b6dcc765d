"""The handout's "Run and check" questions and key observations, from answers.yaml."""
import yaml

from grader.checks import expect, fail, rubric
import pytest


def _answers(path, who):
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        fail(f"{who} {path} does not exist")
    except yaml.YAMLError as error:
        fail(f"{who} {path} is not valid YAML: {error}")
    if not isinstance(data, dict):
        fail(f"{who} {path} should map each question id to its question and answer")
    return {qid: entry.get("answer") if isinstance(entry, dict) else None for qid, entry in data.items()}


def _normal(answer):
    return " ".join(str(answer).lower().split()) if answer is not None else None


@rubric("questions.answers")
def test_answers(grading):
    if not grading.rubric.answer_key.exists():
        pytest.skip("not graded here: the answer key is not shipped with the student template")
    key = _answers(grading.rubric.answer_key, "the answer key")
    answers = _answers(grading.answers, "your answers file")
    wrong = [qid for qid in key if _normal(answers.get(qid)) != _normal(key[qid])]
    unanswered = [qid for qid in wrong if answers.get(qid) is None]
    expect(not wrong,
           f"{len(key) - len(wrong)} of {len(key)} answers match the key; "
           + (f"unanswered: {', '.join(unanswered)}; " if unanswered else "")
           + f"to revisit: {', '.join(q for q in wrong if q not in unanswered) or 'none'} "
           + "(each answer must be one of its listed choices)")
