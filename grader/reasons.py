"""The reasons a class lost an item, grouped by cause rather than by text: each message quotes what
that student's run measured (times, losses, shapes), their line numbers, what they printed and
their own file names, so two students with the same mistake never have the same words."""
import collections
import dataclasses
import re

MESSAGE_CHARS = 400  # a representative message, at most
STUDENTS_LISTED = 300  # names kept per group; the count stays exact

_QUOTED = re.compile(r"""(?<!\w)'[^'\n]*'(?!\w)|(?<!\w)"[^"\n]*"(?!\w)""")  # a repr, never an apostrophe
_SHAPE = re.compile(r"\b\d+(?:x\d+)+\b")  # 32x1000
# A number standing alone: not part of a name (W1, layer2, float64) nor a device's index (cuda:1).
_NUMBER = re.compile(r"(?<![\w:.])[-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?(?![\w.])", re.IGNORECASE)
_RUN = re.compile(r"(#|'…')(?:\s*,\s*\1)+")  # a list of numbers, or of strings, of any length: one


def cause(message: str, student: str = "") -> str:
    """The part of `message` that names its cause: the student's own name, quoted text, shapes,
    numbers and lists of numbers made placeholders, spacing normalised."""
    text = " ".join(message.split())
    if len(student) >= 3:
        text = re.sub(rf"(?<!\w){re.escape(student)}(?!\w)", "<student>", text)
    text = _QUOTED.sub("'…'", text)
    text = _SHAPE.sub("#", text)
    text = _NUMBER.sub("#", text)
    return _RUN.sub(r"\1", text)


@dataclasses.dataclass(frozen=True)
class Group:
    reason: str  # one student's message, as a representative
    count: int
    students: tuple[str, ...]  # sorted, at most STUDENTS_LISTED

    @property
    def unlisted(self) -> int:
        return self.count - len(self.students)


def group(messages: dict[str, str], limit: int) -> tuple[list[Group], int]:
    """{student: message} grouped by cause, largest first: at most `limit` groups, and how many
    students the groups left out hold."""
    by_cause = collections.defaultdict(list)
    for student in sorted(messages):
        by_cause[cause(messages[student], student)].append(student)
    ordered = sorted(by_cause.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    groups = [Group(shorten(messages[names[0]]), len(names), tuple(names[:STUDENTS_LISTED]))
              for _, names in ordered[:limit]]
    return groups, sum(len(names) for _, names in ordered[limit:])


def shorten(message: str) -> str:
    """`message` on one line, at most MESSAGE_CHARS long."""
    text = " ".join(message.split())
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS - 1] + "…"
