"""answers.yaml, read on the trusted side: size-capped, plain YAML with no anchors or aliases
(no alias bomb), every scalar read as the text the student typed (`no` stays "no"), and only the
expected shape: a mapping of question ids to {question, choices, answer}."""
import yaml

from grader.bounded import shorten
from grader.sandbox.files import ANSWERS_CAP, read_text


class AnswersError(Exception):
    """The file cannot be read as answers; the message says why."""


class _TextLoader(yaml.BaseLoader):
    """BaseLoader resolves no types (every scalar is a string); aliases are refused outright."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise AnswersError(f"uses a YAML alias (line {self.peek_event().start_mark.line + 1}); "
                               "write each answer out")
        return super().compose_node(parent, index)


def load(path, what, within=None):
    """{question id: {"answer": str | None, "choices": [str]}} from `path`."""
    text = read_text(path, ANSWERS_CAP, what, within)
    try:
        data = yaml.load(text, Loader=_TextLoader)  # noqa: S506 - BaseLoader builds plain str/list/dict only
    except yaml.YAMLError as error:
        raise AnswersError(shorten(f"{what} is not valid YAML: {error}", 500)) from None
    except RecursionError:
        raise AnswersError(f"{what} nests lists or mappings too deep: each answer is one word") from None
    if not isinstance(data, dict):
        raise AnswersError(f"{what} should map each question id to its question, choices and answer")
    answers = {}
    for qid, entry in data.items():
        entry = entry if isinstance(entry, dict) else {}
        answer = entry.get("answer")
        choices = entry.get("choices")
        answers[qid] = {"answer": None if answer in (None, "", "null", "~") or not isinstance(answer, str)
                        else answer,
                        "choices": [c for c in choices if isinstance(c, str)] if isinstance(choices, list) else []}
    return answers
