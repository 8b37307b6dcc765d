"""Batch throughput in virtual mode: a class of submissions (correct and buggy, in turn) graded with
`python -m grader.batch -j <cores>`, as seconds per submission against `python -c "import torch"`,
timed before and after the batch in the same run. Target: 0.25x.
Run: python bench/batch_throughput.py [COUNT]  (default 40)"""
import os
import pathlib
import shutil
import statistics
import sys
import tempfile

from measure import ROOT, command, import_torch, medians, report

sys.path.insert(0, os.path.join(ROOT, "tests"))
from corpus import BUGS, write

TARGET = 0.25
MIX = ["no_zero_grad", "bare_sync", "no_input_move", "made_up_time", "no_relu2", "host_round_trip",
       "verbose_wrong_words", "fixed_steps", "no_transfer", "syntax_error"]


def ratio(count=40):
    assert set(MIX) <= set(BUGS)
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp) / "class"
        folder.mkdir()
        for n in range(count):
            source = write(MIX[n // 2 % len(MIX)], tmp) if n % 2 else pathlib.Path(ROOT) / "solutions" / "model.py"
            shutil.copy(source, folder / f"student{n:03d}.py")
        batch = command(sys.executable, "-m", "grader.batch", str(folder), "--out", str(pathlib.Path(tmp) / "out"),
                        "-j", str(os.cpu_count()))
        before, = medians([import_torch()], 3)
        seconds, = medians([batch], 1)
        after, = medians([import_torch()], 3)
    return report(f"a batch of {count}, per submission", seconds / count, "import torch",
                  statistics.mean([before, after]), TARGET)


if __name__ == "__main__":
    ratio(int(sys.argv[1]) if len(sys.argv) > 1 else 40)
