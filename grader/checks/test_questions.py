"""The handout's "Run and check" questions and key observations, from answers.yaml (read as
plain text on the trusted side: grader.answers)."""
import pytest

from grader import answers as answer_files
from grader.checks import expect, fail, rubric
from grader.sandbox.files import InvalidFile


def _read(path, what, within=None):
    try:
        return answer_files.load(path, what, within)
    except InvalidFile as error:
        fail(f"{error}" if not error.missing else f"{what} {path.name} does not exist")
    except answer_files.AnswersError as error:
        fail(str(error))


def _normal(answer):
    return " ".join(answer.lower().split()) if answer is not None else None


@rubric("questions.answers")
def test_answers(grading):
    if not grading.rubric.answer_key.exists():
        pytest.skip("not graded here: the answer key is not shipped with the student template")
    key = _read(grading.rubric.answer_key, "the answer key")
    answers = _read(grading.answers, "your answers file", grading.root)
    wrong = [qid for qid in key if _normal((answers.get(qid) or {}).get("answer")) != _normal(key[qid]["answer"])]
    unanswered = [qid for qid in wrong if (answers.get(qid) or {}).get("answer") is None]
    off_list = [qid for qid in wrong if qid not in unanswered
                and _normal(answers[qid]["answer"]) not in {_normal(c) for c in key[qid]["choices"]}]
    expect(not wrong,
           f"{len(key) - len(wrong)} of {len(key)} answers match the key; "
           + (f"unanswered: {', '.join(unanswered)}; " if unanswered else "")
           + (f"not one of the listed choices (copy a choice exactly): {', '.join(off_list)}; " if off_list else "")
           + f"to revisit: {', '.join(q for q in wrong if q not in unanswered and q not in off_list) or 'none'}")
