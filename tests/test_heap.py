"""grader.heap: freed blocks of a layer's size stay in the heap for the next ones, instead of
being handed back and faulted in afresh."""
import subprocess
import sys

import pytest

from grader import ROOT
from grader.sandbox import isolation

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


TOUCHED = """
import ctypes
from grader import heap
heap.keep_freed_memory()  # as the zygote: layer-sized blocks in the heap, which grows to hold them
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
for _ in range(4):  # 64 MiB, every page written; malloc's own, as torch's allocator (numpy asks the kernel itself)
    ctypes.memset(libc.malloc(16 * 2**20), 1, 16 * 2**20)
print(next(int(line.split()[1]) for line in open("/proc/self/smaps_rollup") if line.startswith("AnonHugePages:")))
"""


def _transparent_huge_pages():
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as setting:
            return setting.read().split("[")[1].split("]")[0]
    except (OSError, IndexError):
        return None


@pytest.mark.skipif(_transparent_huge_pages() != "madvise", reason="the kernel's huge pages are left to the program")
def test_the_zygote_heap_grows_in_huge_pages_where_the_kernel_leaves_them_to_the_program():
    """The zygote's environment asks glibc for them: a probe's layers then fault in 2 MiB at a time."""
    def huge_kib(env):
        done = subprocess.run([sys.executable, "-c", TOUCHED], cwd=ROOT, env=env, capture_output=True, text=True,
                              check=True)
        return int(done.stdout)

    zygote = isolation.environment()
    assert huge_kib(zygote) >= 32 * 1024
    assert huge_kib({k: v for k, v in zygote.items() if k != "GLIBC_TUNABLES"}) == 0
