"""`python -m grader.selftest`: the machine check a TA runs first. Here (no GPU) it grades in
virtual mode; its one-GPU rehearsal pieces are run on virtual GPUs to keep their code honest."""

import ast
import importlib
import importlib.util
import pathlib

from helpers import python_m

from grader import selftest
from grader.virtual import virtual_gpus


def test_selftest_passes_on_this_machine_and_prints_one_table():
    run = python_m("grader.selftest")
    assert run.returncode == 0, run.stdout + run.stderr
    rows = [line for line in run.stdout.splitlines() if line.startswith(("ok ", "FAIL"))]
    assert len(rows) == 1 + len(selftest.FAULTS) and all(r.startswith("ok ") for r in rows)
    assert "virtual: grade bare_sync" in run.stdout and f"{len(rows)} of {len(rows)} checks as expected" in run.stdout


def test_a_fault_the_grader_misjudges_fails_the_selftest(monkeypatch, capsys):
    """Told that no_sync costs only the clock item, the selftest sees the grader take the
    synchronize item too, says so, and exits 1."""
    wrong = selftest.Fault(selftest.FAULTS["no_sync"].edits, ("part4.clock_after_sync",))
    monkeypatch.setattr(selftest, "FAULTS", {"no_sync": wrong})
    assert selftest.main([]) == 1
    out = capsys.readouterr().out
    assert "FAIL virtual: grade no_sync" in out and "also lost part4.sync_covers_output_gpu" in out
    assert "1 of 2 checks as expected; 1 FAILED" in out


def test_the_plan_follows_the_gpus():
    lab = None  # the plan only binds it
    assert [t for t, _ in selftest.plan(0, lab)] == ["virtual mode"]
    assert [t for t, _ in selftest.plan(1, lab)] == ["virtual mode", "sandbox with CUDA", "recorder",
                                                     "timing reference", "profiler"]
    assert [t for t, _ in selftest.plan(2, lab)] == ["virtual mode", "real mode", "timing reference", "profiler"]


def test_the_one_gpu_recorder_rehearsal_runs():
    """Run on virtual GPUs here, the rehearsal's code records what it must; on a real GPU the same
    code reads real events."""
    with virtual_gpus(2):
        rows = selftest.recorder_rows()
    assert [r.ok for r in rows] == [True, True], rows


def test_help_and_a_template_without_solutions(tmp_path):
    run = python_m("grader.selftest", "--help")
    assert run.returncode == 0 and "two or more" in run.stdout and "--rubric" in run.stdout
    run = python_m("grader.selftest", "--rubric", tmp_path / "missing.yaml")
    assert run.returncode == 2 and "invalid rubric" in run.stderr and "Traceback" not in run.stderr


def test_the_timing_reference_rehearsal_runs(monkeypatch):
    """On virtual GPUs, at a small batch: the row times the grader's own forward both ways."""
    monkeypatch.setattr(selftest, "LARGE_BATCH", 64)
    with virtual_gpus(2):
        row = selftest.separation_row(("cuda:0", "cuda:1"))
    assert row.check == "large-batch reference on cuda:0 and cuda:1" and " us vs " in row.got, row


def test_every_name_the_gpu_checks_import_exists():
    """The one- and two-GPU rows import what they use when they run, which only a GPU machine does:
    each name they import must be there, or the TA's first command ends in an ImportError."""
    tree = ast.parse(pathlib.Path(selftest.__file__).read_text())
    imported = [(node.module, alias.name) for function in tree.body if isinstance(function, ast.FunctionDef)
                for node in ast.walk(function) if isinstance(node, ast.ImportFrom) for alias in node.names]
    assert len(imported) >= 6

    def exists(module, name):  # an attribute, or a submodule of a package
        found = importlib.import_module(module)
        return hasattr(found, name) or (hasattr(found, "__path__") and importlib.util.find_spec(f"{module}.{name}"))

    missing = [f"{module}.{name}" for module, name in imported if not exists(module, name)]
    assert not missing
