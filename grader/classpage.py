"""report.html: the class view as one page that opens from the gradebook's folder, offline. Nothing
is loaded from anywhere (its Content-Security-Policy forbids it: no script, font or image, the
style inline); the charts are inline SVG. Student names and messages are hostile text: every value
is escaped, every link quoted. Long lists are collapsed, so that a class of 300 reads at a glance."""
import html
import urllib.parse

from grader import reasons
from grader.classview import ClassView, Item, Student

POLICY = "default-src 'none'; style-src 'unsafe-inline'"
OPEN_UP_TO = 20  # a longer list of students starts collapsed
STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
h1{margin-bottom:.2em} h2{margin-top:1.6em;border-bottom:1px solid #ddd}
.meta{color:#555} .figures span{margin-right:1.5em} .figures b{font-size:1.3em}
table{border-collapse:collapse;width:100%} td,th{text-align:left;padding:2px 8px;border-bottom:1px solid #eee}
.item{margin:1em 0;padding:.4em .8em;border-left:4px solid #c33;background:#fafafa}
.item.ok{border-color:#3a3} .item p{margin:.3em 0} .count{font-weight:bold;margin-right:.4em}
.reason{font-family:monospace;font-size:13px} .reason,td{overflow-wrap:anywhere}
details>summary{cursor:pointer} .names{margin:.3em 0 .6em 1.5em}
svg text{font:11px system-ui,sans-serif;fill:#333} .bar{fill:#4a7ebb} .miss{fill:#e3b3b3}
"""


def page(view: ClassView) -> str:
    """The HTML of report.html."""
    n = len(view.students)
    feedback = {s.name: s.feedback for s in view.students}
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_e(POLICY)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>Class report</title>", f"<style>{STYLE}</style></head><body>",
        f"<h1>Class report: {n} students</h1>",
        f'<p class="meta">grader {_e(", ".join(view.graders) or "-")} · mode {_e(", ".join(view.modes) or "-")} · '
        f'isolation {_e(", ".join(view.isolations) or "-")} · {_e(view.date)}</p>',
        '<p class="figures">' + "".join(f"<span>{label} <b>{_e(value)}</b></span>" for label, value in (
            ("mean", f"{view.mean:.1f}"), ("median", f"{view.median:g}"), ("lowest", f"{view.lowest:g}"),
            ("highest", f"{view.highest:g}"), ("out of", f"{view.max_score:g}"))) + "</p>",
        "<p>" + " · ".join(f"{_e(status)}: {count}" for status, count in view.statuses.items()) + "</p>",
        "<h2>Scores</h2>", histogram_svg(view),
        "<h2>Items, most missed first</h2>", shares_svg(view),
        *(_item(item, n, feedback) for item in view.most_missed()),
        *_flagged(view.flagged),
        *_students(view.students),
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def histogram_svg(view: ClassView) -> str:
    """How many students scored in each bin."""
    width, height, left, bottom = 720, 180, 30, 24
    bar = (width - left) / max(1, len(view.histogram))
    tallest = max((b.count for b in view.histogram), default=0) or 1
    shapes = []
    for n, b in enumerate(view.histogram):
        h = (height - bottom - 16) * b.count / tallest
        x, y = left + n * bar, height - bottom - h
        shapes.append(f'<rect class="bar" x="{x + 2:.1f}" y="{y:.1f}" width="{bar - 4:.1f}" height="{h:.1f}">'
                      f"<title>{b.low:g}-{b.high:g}: {b.count}</title></rect>")
        if b.count:
            shapes.append(f'<text x="{x + bar / 2:.1f}" y="{y - 3:.1f}" text-anchor="middle">{b.count}</text>')
        shapes.append(f'<text x="{x + bar / 2:.1f}" y="{height - 8}" text-anchor="middle">{b.low:g}-{b.high:g}</text>')
    return (f'<svg role="img" aria-label="score histogram" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">' + "".join(shapes) + "</svg>")


def shares_svg(view: ClassView) -> str:
    """Each item's share of the class that earned it, most missed first."""
    n, row, label, width = len(view.students), 18, 250, 720
    items = view.most_missed()
    shapes = []
    for k, item in enumerate(items):
        share = item.earned / n if n else 0.0
        y, full = k * row, width - label - 60
        shapes += [f'<text x="{label - 6}" y="{y + 13}" text-anchor="end">{_e(item.id)}</text>',
                   f'<rect class="miss" x="{label}" y="{y + 3}" width="{full}" height="{row - 6}"></rect>',
                   f'<rect class="bar" x="{label}" y="{y + 3}" width="{full * share:.1f}" height="{row - 6}">'
                   f"<title>{_e(item.id)}: {item.earned} of {n}</title></rect>",
                   f'<text x="{label + full + 6}" y="{y + 13}">{share:.0%}</text>']
    height = row * len(items) + 4
    return (f'<svg role="img" aria-label="share of the class that earned each item" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}">' + "".join(shapes) + "</svg>")


def _item(item: Item, n: int, feedback: dict[str, str | None]) -> str:
    points = f"+{item.points:g} bonus" if item.bonus else f"{item.points:g} points"
    head = (f'<div class="item{" ok" if item.earned == n else ""}" id="{_e("item-" + item.id)}">'
            f"<b>{_e(item.id)}</b> {_e(item.title)} ({points})<br>"
            f"earned by {item.earned} of {n} · mean {item.mean:.2f}")
    groups = [f'<details><summary><span class="count">{g.count}</span><span class="reason">{_e(g.reason)}</span>'
              f'</summary><div class="names">{_names(g.students, feedback)}'
              f'{f" and {g.unlisted} more" if g.unlisted else ""}</div></details>' for g in item.reasons]
    if item.other:
        groups.append(f"<p>{item.other} more students, for other reasons (see their feedback)</p>")
    if item.flagged:
        groups.append(f'<p>{item.flagged} flagged students, not graded: see <a href="#flagged">below</a></p>')
    return head + "".join(groups) + "</div>"


def _names(names, feedback):
    return ", ".join(_link(feedback.get(name), name) for name in names)


def _flagged(flagged: list[Student]) -> list[str]:
    if not flagged:
        return ['<h2 id="flagged">Flagged students</h2>', "<p>None: every submission was graded.</p>"]
    rows = [(_e(s.name), _e(s.status), _e(reasons.shorten(s.reason)),
             _link(s.log, "log") if s.log else "no log (nothing ran)") for s in flagged]
    return [f'<h2 id="flagged">Flagged students ({len(flagged)})</h2>',
            _collapsed("timeout, crashed, tamper-suspected, invalid or no submission", len(flagged),
                       _table(("student", "status", "reason", "log"), rows))]


def _students(students: tuple[Student, ...]) -> list[str]:
    rows = [(_e(s.name), _e(s.identifier), f"{s.score:g}", "" if s.max_score is None else f"{s.max_score:g}",
             _e(s.status), _link(s.feedback, "feedback") if s.feedback else "") for s in students]
    return [f"<h2>Every student ({len(students)})</h2>",
            _collapsed("the table: score and feedback of each student", len(students),
                       _table(("student", "identifier", "score", "max", "status", "feedback"), rows))]


def _collapsed(summary, count, body):
    """`body` under `summary`, shown at once for a short list."""
    return f"<details{' open' if count <= OPEN_UP_TO else ''}><summary>{summary}</summary>{body}</details>"


def _table(headers, rows):
    """A table of cells already in HTML."""
    head = "".join(f"<th>{h}</th>" for h in headers)
    return f"<table><tr>{head}</tr>" + "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
                                              for row in rows) + "</table>"


def _link(path: str | None, text: str) -> str:
    """`text` linking to the gradebook's file `path` (relative), or plain text without one."""
    if path is None:
        return _e(text)
    return f'<a href="{_e(urllib.parse.quote(path))}">{_e(text)}</a>'


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
