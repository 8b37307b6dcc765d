"""The class at a glance: class.json's numbers agree with grades.csv, reasons are grouped by cause,
and report.html is one offline page, escaped, that shows every item and student with links that
resolve (rendered in headless Chromium where it is installed). Built from a gradebook of known
mistakes; one real batch end to end."""
import csv
import html.parser
import json
import pathlib
import shutil
import statistics
import subprocess
import sys
import urllib.parse

import pytest
from corpus import ROOT, SOLUTION, write
from helpers import ABSENT, MISTAKES, STATUSES, fast_rubric, python_m, synthetic_class

from grader import classpage, classview, reasons

EVERYONE = sorted([*MISTAKES, *STATUSES, ABSENT])


@pytest.fixture(scope="module")
def gradebook(tmp_path_factory):
    out = tmp_path_factory.mktemp("class") / "out"
    lab = synthetic_class(out)
    return out, lab, json.loads((out / "class.json").read_text())


def csv_rows(out):
    return list(csv.DictReader((out / "grades.csv").open(encoding="utf-8")))


def test_class_json_agrees_with_grades_csv(gradebook):
    out, lab, view = gradebook
    rows = csv_rows(out)
    scores = [float(r["score"]) for r in rows]
    assert view["students"] == len(rows) == len(EVERYONE)
    assert view["statuses"] == {s: sum(r["status"] == s for r in rows) for s in {r["status"] for r in rows}}
    assert view["statuses"] == {"graded": 7, "timeout": 1, "tamper-suspected": 1, "no-submission": 1}
    assert (view["score"]["mean"], view["score"]["median"]) == pytest.approx((statistics.fmean(scores),
                                                                               statistics.median(scores)))
    bins = view["score"]["histogram"]
    assert bins[0]["from"] == 0 and bins[-1]["to"] >= max(scores) and sum(b["count"] for b in bins) == len(rows)
    top = bins[-1]["to"]
    assert [b["count"] for b in bins] == [sum(b["from"] <= s < b["to"] or s == b["to"] == top for s in scores)
                                          for b in bins]
    assert list(view["items"]) == list(lab.items)
    for item_id, item in lab.items.items():
        column = [r[item_id] for r in rows]
        assert view["items"][item_id]["earned"] == sum(c == f"{item.points:g}" for c in column), item_id
        assert view["items"][item_id]["mean"] == pytest.approx(sum(float(c or 0) for c in column) / len(rows))
        item = view["items"][item_id]
        lost = sum(g["count"] for g in item["reasons"]) + item["other_reasons"] + item["flagged"]
        assert lost == len(rows) - item["earned"], item_id  # every miss has its reason
        assert item["flagged"] == sum(r["status"] in ("timeout", "no-submission") for r in rows), item_id
    assert view["items"]["questions.answers"]["earned"] == 6  # erin's 4.5 of 5 is not the item


def groups(view, item_id):
    return [(g["count"], g["students"]) for g in view["items"][item_id]["reasons"]]


def test_the_same_cause_is_one_group_whatever_its_numbers_and_lines(gradebook):
    _, _, view = gradebook
    assert groups(view, "part4.sync_covers_output_gpu")[0] == (2, ["bob", "carol"])
    assert groups(view, "part4.seconds_plausible")[0] == (2, ["carol", "dave"])  # each their own timings
    clock = groups(view, "part4.clock_after_sync")  # lines 48 and 53: one cause; a crash on line 27: another
    assert clock[0] == (2, ["dave", "erin"]) and (1, ["frank"]) in clock
    assert view["items"]["part4.clock_after_sync"]["reasons"][0]["reason"].startswith("the end clock (line 48)")
    counts = [g["count"] for g in view["items"]["part4.clock_after_sync"]["reasons"]]
    assert counts == sorted(counts, reverse=True)


def test_causes_keep_what_tells_them_apart():
    assert reasons.cause("waits only for cuda:0 (line 4)") != reasons.cause("waits only for cuda:1 (line 4)")
    assert reasons.cause("layer1 on cuda:0, W1 in float64") == "layer1 on cuda:0, W1 in float64"
    assert reasons.cause("printed ['a', 'b', 'c'], shape (32x1000)") == reasons.cause("printed ['x'], shape (8x2)")
    assert reasons.cause("your answers file bob.yaml does not exist", "bob") == reasons.cause(
        "your answers file carol.yaml does not exist", "carol")
    assert reasons.cause("defines no `train`") != reasons.cause("defines no `time_forward`")


def test_every_output_is_bounded():
    messages = {f"s{n:03}": f"cause number {'x' * n} " + "y" * 1000 for n in range(40)}
    messages.update({f"t{n:03}": "one shared cause" for n in range(reasons.STUDENTS_LISTED + 5)})
    found, other = reasons.group(messages, 8)
    assert len(found) == 8 and other == 40 - 7
    assert found[0].count == reasons.STUDENTS_LISTED + 5 and found[0].unlisted == 5
    assert all(len(g.reason) <= reasons.MESSAGE_CHARS for g in found)


def test_flagged_students_have_their_reason_and_log(gradebook):
    _, _, view = gradebook
    flagged = {f["student"]: f for f in view["flagged"]}
    assert set(flagged) == {*STATUSES, ABSENT}
    assert flagged["gina"]["log"] == "logs/gina.log" and flagged[ABSENT]["log"] is None
    assert flagged["hank"]["reason"] == STATUSES["hank"][1]


class Page(html.parser.HTMLParser):
    """What a page holds: its tags, their links and sources, and its text."""

    def __init__(self, text):
        super().__init__()
        self.tags, self.ids, self.links, self.sources, self.text = [], [], [], [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        self.ids += [attrs["id"]] if "id" in attrs else []
        self.links += [attrs["href"]] if "href" in attrs else []
        self.sources += [attrs[a] for a in ("src", "srcset", "data", "xlink:href") if a in attrs]

    def handle_data(self, data):
        self.text.append(data)


def check_page(text, out, view):
    """Offline, escaped, every item and student shown, every link resolved."""
    page = Page(text)
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags and not page.sources
    assert "<script>" not in text and "Content-Security-Policy" in text
    shown = " ".join(page.text)
    assert all(name in shown for name in EVERYONE)
    assert [i for i in view["items"] if f"item-{i}" not in page.ids] == []  # each item's section, not only its bar
    assert "<script>alert(1)</script>" in shown  # the hostile message, as text
    assert page.links and all(not urllib.parse.urlparse(link).scheme or link.startswith("file:") for link in page.links)
    for link in page.links:
        path = urllib.parse.urlparse(link).path
        if link.startswith("#"):
            assert link[1:] in page.ids, link
            continue
        target = pathlib.Path(urllib.parse.unquote(path)) if path.startswith("/") else out / urllib.parse.unquote(path)
        assert target.is_file(), link
    for name in (n for n in EVERYONE if n != ABSENT):  # the absent student has no feedback
        assert f"feedback/{name}.md" in map(urllib.parse.unquote, page.links), name
    return page


def test_report_html_is_offline_escaped_and_complete(gradebook):
    out, _, view = gradebook
    text = (out / "report.html").read_text(encoding="utf-8")
    check_page(text, out, view)
    assert len(text) < 200_000  # the 5000-character message is capped


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(*args):
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_chromium_renders_every_item_and_student_with_links_that_resolve(gradebook, tmp_path):
    out, _, view = gradebook
    url = (out / "report.html").as_uri()
    dom = chromium("--dump-dom", url).stdout
    page = check_page(dom, out, view)
    assert "svg" in page.tags and "rect" in page.tags and "details" in page.tags
    shot = tmp_path / "report.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,1600", url)
    assert shot.stat().st_size > 20_000  # a blank page compresses to a few kB


def test_the_class_view_needs_neither_the_sandbox_nor_torch():
    run = subprocess.run([sys.executable, "-c", "import sys, grader.classview, grader.classpage, grader.lms; "
                          "print(sorted(m for m in sys.modules if m.startswith(('grader.', 'torch'))))"],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0 and "sandbox" not in run.stdout and "torch" not in run.stdout, run.stdout


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """A real batch: two students who call synchronize() with no device, one on other lines, and one
    who forgets synchronize."""
    root = tmp_path_factory.mktemp("batch")
    folder = root / "class"
    folder.mkdir()
    shutil.copy(SOLUTION, folder / "alice.py")
    shutil.copy(write("bare_sync", root), folder / "bob.py")
    (folder / "carol.py").write_text("# carol's lab\n\n\n" + (folder / "bob.py").read_text())
    shutil.copy(write("no_sync", root), folder / "dave.py")
    out = root / "out"
    run = python_m("grader.batch", folder, "--out", out, "-j", 2, "--rubric", fast_rubric(root))
    assert run.returncode == 0, run.stderr
    return out


def test_a_batch_writes_the_class_view(batch):
    view = json.loads((batch / "class.json").read_text())
    rows = csv_rows(batch)
    assert view["students"] == 4 and view["statuses"] == {"graded": 4}
    assert view["score"]["median"] == statistics.median(float(r["score"]) for r in rows)
    sync = view["items"]["part4.sync_covers_output_gpu"]
    assert sync["earned"] == 1 and [g["students"] for g in sync["reasons"]] == [["bob", "carol"], ["dave"]]
    assert view["items"]["part4.clock_after_sync"]["reasons"][0]["students"] == ["dave"]
    page = Page((batch / "report.html").read_text())
    assert all(f"feedback/{n}.md" in page.links for n in ("alice", "bob", "carol", "dave"))


def test_an_empty_class_has_no_one_in_its_histogram(tmp_path):
    view = classview.summarise([], tmp_path, "today")
    assert view.as_json()["students"] == 0 and sum(b.count for b in view.histogram) == 0
    assert "Class report: 0 students" in classpage.page(view)
