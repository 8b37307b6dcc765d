"""grader.heap: freed blocks of a layer's size stay in the heap for the next ones, instead of
being handed back and faulted in afresh."""
import subprocess
import sys

import pytest

from grader import ROOT

FREED = """
import ctypes, sys
import numpy
if sys.argv[1] == "kept":
    from grader import heap
    heap.keep_freed_memory()

class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                      "fsmblks", "uordblks", "fordblks", "keepcost")]

mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = Mallinfo2
for _ in range(3):  # a model's worth of layer-sized blocks (16 MiB in float64), made and freed together
    blocks = [numpy.ones(2 * 2**20) for _ in range(4)]
    del blocks
print(mallinfo2().fordblks)  # the bytes free in the heap, for the next blocks
"""


def free_in_heap(mode):
    done = subprocess.run([sys.executable, "-c", FREED, mode], cwd=ROOT, capture_output=True, text=True, check=True)
    return int(done.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_freed_layer_sized_blocks_stay_in_the_heap_for_the_next():
    assert free_in_heap("kept") >= 64 * 2**20
    assert free_in_heap("default") < 64 * 2**20  # glibc hands them back: the next ones fault in afresh
