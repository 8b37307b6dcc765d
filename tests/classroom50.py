"""Classroom 50's rules for what an autograder hands its runner, restated from its sources
(github.com/foundation50/classroom50), so that the tests need no copy of them:

- cli/gh-teacher/skeleton/dotgithub/scripts/runner.py: `finalize_result` (result.json must exist and
  be JSON; the runner stamps owner, assignment_type, datetime and graded_at, then validates),
  `validate_result` (kept in lockstep with collect_scores.py's: integers that are not booleans,
  score <= max-score at the top and per test, tests of test-name/passed/score/max-score),
  `output_has_status` and `derive_status_and_summary` (an autograder's `status=` line in
  $GITHUB_OUTPUT is used as is, the last one counting; else success exactly when every test
  passed), `validate_release_asset_paths`, `_looks_like_result_document` and the RELEASE_ASSETS_* limits;
- schemas/result-v1.schema.json, stricter than the code (what non-CLI clients validate with): no
  top-level key beyond its list, `datetime` as YYYY-MM-DDTHH:MM:SSZ;
- skeleton/dotgithub/workflows/autograde-runner.yaml: a result whose status is error publishes no
  Release; the summary is a commit status's description;
- GitHub's own limits on those: a Release body of at most 125,000 characters, a commit status
  description of at most 140.
"""
import json
import re

SCHEMA = "classroom50/result/v1"
BODY_LIMIT = 125_000
DESCRIPTION_LIMIT = 140
ASSETS_MAX_FILES = 50
ASSETS_MAX_BYTES = 104_857_600
ASSET_BASENAME = re.compile(r"^[A-Za-z0-9_-](?:[A-Za-z0-9._-]{0,253}[A-Za-z0-9_-])?$", re.ASCII)
STAMPED = {"owner": "student", "assignment_type": "individual", "datetime": "2026-12-01T12:00:00Z",
           "graded_at": "2026-12-01T12:00:00Z"}  # what the runner writes over, before it validates
KEYS = {"schema", "classroom", "assignment", "assignment_type", "owner", "submission", "commit", "release", "review",
        "datetime", "graded_at", "score", "max-score", "tests", "submitted_by"}
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T([01]\d|2[0-3]):[0-5]\d:[0-5]\dZ$")
BUNDLE_MAX_BYTES = 10 * 1024 * 1024  # runner.py's MAX_FETCH_BYTES, for the packed bundle


def _count(value):
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def invalid(result, classroom, assignment):
    """Why the runner (validate_result, on `result` stamped as it stamps it) or the schema would
    refuse `result`, or None."""
    if not isinstance(result, dict):
        return "not a JSON object"
    if set(result) - KEYS or ("datetime" in result and not DATETIME.match(str(result["datetime"]))):
        return f"keys {sorted(set(result) - KEYS)} or datetime {result.get('datetime')!r} outside the schema"
    result = {**result, **STAMPED}
    if result.get("schema") != SCHEMA:
        return f"schema is {result.get('schema')!r}"
    if (result.get("classroom"), result.get("assignment")) != (classroom, assignment):
        return "classroom or assignment is not the submission's"
    if not isinstance(result.get("submission"), str) or not result["submission"].startswith("submit/"):
        return "'submission' must be a 'submit/*' string"
    for field in ("commit", "release", "review", "datetime"):
        if not isinstance(result.get(field), str) or not result[field]:
            return f"{field!r} must be a non-empty string"
    if not _count(result.get("score")) or not _count(result.get("max-score")):
        return "'score' and 'max-score' must be non-negative integers"
    if result["score"] > result["max-score"]:
        return f"score ({result['score']}) > max-score ({result['max-score']})"
    if not isinstance(result.get("tests"), list):
        return "'tests' is not a list"
    return next(filter(None, (_invalid_test(i, test) for i, test in enumerate(result["tests"]))), None)


def _invalid_test(i, test):
    if not isinstance(test, dict):
        return f"tests[{i}] is not an object"
    if not isinstance(test.get("test-name"), str) or not test["test-name"]:
        return f"tests[{i}].test-name must be a non-empty string"
    if not isinstance(test.get("passed"), bool):
        return f"tests[{i}].passed must be a boolean"
    if not _count(test.get("score")) or not _count(test.get("max-score")):
        return f"tests[{i}] score and max-score must be non-negative integers"
    if test["score"] > test["max-score"]:
        return f"tests[{i}].score > tests[{i}].max-score"
    return None


def status(outputs, result):
    """The commit status the runner posts: the last `status=` line of $GITHUB_OUTPUT, else derived."""
    lines = [line.removeprefix("status=") for line in outputs.splitlines() if line.startswith("status=")]
    if lines:
        return lines[-1]
    return "success" if all(t["passed"] for t in result["tests"]) else "failure"


def published(checkout, outputs, classroom, assignment):
    """(result, body, status) as the runner takes them from an autograder that exited 0; the status
    is "error" (no Release) with result None when the runner would refuse the result."""
    path = checkout / "result.json"
    try:
        result = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, None, "error"
    if invalid(result, classroom, assignment) is not None:
        return None, None, "error"
    body = (checkout / "release-body.md").read_text() if (checkout / "release-body.md").is_file() else None
    return result, body, status(outputs, result)


def asset_problems(folder):
    """What the runner would skip of the files in `folder` (release_assets naming them)."""
    files = sorted(folder.iterdir()) if folder.is_dir() else []
    problems = [f"{len(files)} files (at most {ASSETS_MAX_FILES})"] if len(files) > ASSETS_MAX_FILES else []
    problems += [f"{f.name} is not Release-safe" for f in files
                 if not ASSET_BASENAME.fullmatch(f.name) or ".." in f.name
                 or f.name.lower() in ("result.json", "release-body.md")]
    problems += [f"{f.name} is not a regular file" for f in files if f.is_symlink() or not f.is_file()]
    problems += [f"{f.name} is a result document" for f in files if f.is_file()
                 and f.read_bytes().lstrip()[:1] in (b"{", b"[") and b"classroom50/result/" in f.read_bytes()]
    if sum(f.stat().st_size for f in files if f.is_file()) > ASSETS_MAX_BYTES:
        problems.append("over 100 MiB")
    return problems
