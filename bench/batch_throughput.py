"""Batch throughput in virtual mode: 100 submissions (correct and buggy, in turn) graded with
`python -m grader.batch -j <cores>`, as seconds per submission against `python -c "import torch"`
measured in the same run. Run: python bench/batch_throughput.py [COUNT]"""
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from corpus import BUGS, write

MIX = ["no_zero_grad", "bare_sync", "no_input_move", "made_up_time", "no_relu2", "host_round_trip",
       "verbose_wrong_words", "fixed_steps", "no_transfer", "syntax_error"]


def seconds(command):
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - start


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    assert set(MIX) <= set(BUGS)
    with tempfile.TemporaryDirectory() as tmp:
        folder = pathlib.Path(tmp) / "class"
        folder.mkdir()
        for n in range(count):
            if n % 2:
                shutil.copy(write(MIX[n // 2 % len(MIX)], tmp), folder / f"student{n:03d}.py")
            else:
                shutil.copy(ROOT / "solutions" / "model.py", folder / f"student{n:03d}.py")
        floor = statistics.median(seconds([sys.executable, "-c", "import torch"]) for _ in range(3))
        batch = seconds([sys.executable, "-m", "grader.batch", folder, "--out", pathlib.Path(tmp) / "out",
                         "-j", str(os.cpu_count())])
    each = batch / count
    print(f"import torch: {floor:.2f} s")
    print(f"batch of {count}: {batch:.1f} s, {each:.3f} s per submission")
    print(f"ratio: {each / floor:.2f}x the import per submission (target 0.5x)")
