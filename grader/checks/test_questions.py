"""The handout's "Run and check" questions and key observations, from answers.yaml (read as
plain text on the trusted side: grader.answers, so `no` stays the word "no"). Each answer earns
its share of the item (the rubric's `partial`); without the key (the student template) the
answers are checked for form only."""
import pytest

from grader import answers as answer_files
from grader.checks import fail, partial, rubric
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


def _sorted(questions, answers):
    """(right-or-unchecked, unanswered, off-list) question ids, and each off-list answer's words:
    an answer is judged against its question's listed choices in `questions`."""
    valid, unanswered, off_list = [], [], []
    for qid, question in questions.items():
        answer = (answers.get(qid) or {}).get("answer")
        if answer is None:
            unanswered.append(qid)
        elif _normal(answer) not in {_normal(c) for c in question["choices"]}:
            choices = [f"'{c}'" for c in question["choices"]] or ["a listed choice"]
            listed = f"none of {', '.join(choices[:-1])} or {choices[-1]}" if len(choices) > 1 else f"not {choices[0]}"
            off_list.append(f"{qid}: '{answer}' is {listed}")
        else:
            valid.append(qid)
    return valid, unanswered, off_list


def _problems(unanswered, off_list):
    return ([f"unanswered: {', '.join(unanswered)}"] if unanswered else []) + (
        [f"not a listed choice (copy one exactly) - {'; '.join(off_list)}"] if off_list else [])


@rubric("questions.answers")
def test_answers(grading):
    answers = _read(grading.answers, "your answers file", grading.root)
    if not grading.rubric.answer_key.exists():
        valid, unanswered, off_list = _sorted(answers, answers)
        problems = _problems(unanswered, off_list)
        form = "; ".join([f"{len(valid)} of {len(answers)} answers are valid choices", *problems]) if problems else (
            f"all {len(valid)} answers are valid choices")
        pytest.skip(f"not graded here (your TA grades the answers against the key): {form}")
    key = _read(grading.rubric.answer_key, "the answer key")
    valid, unanswered, off_list = _sorted(key, answers)
    right = [q for q in valid if _normal(answers[q]["answer"]) == _normal(key[q]["answer"])]
    wrong = [q for q in valid if q not in right]
    partial(len(right), len(key), "; ".join([f"{len(right)} of {len(key)} answers match the key",
                                             *_problems(unanswered, off_list),
                                             *([f"to revisit: {', '.join(wrong)}"] if wrong else [])]))
