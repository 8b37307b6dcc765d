"""Freed memory kept for reuse. A tensor or array of a layer's size is a few MiB: glibc's malloc
maps each one fresh and unmaps it when freed, so every training step faults its pages in again,
and on a virtual machine a fault, and the unmapping, cost far more than the arithmetic. Kept in
the process's heap instead, the next tensor of that size reuses the same pages. Both sides set it
at their start: the zygote (whose probes inherit it) and the grader's own process as its reference
math loads (grader.reference; a batch's workers inherit it). The address space a process holds
still counts against its limits, as before.

The zygote also starts with glibc's transparent huge pages (TUNABLES, read by the C library as the
interpreter starts, so it is set in the environment the sandbox gets): where the kernel leaves them
to the program (`madvise`, the common default), the heap grows in 2 MiB pages, and a fresh probe
process faults in its layers a fifth as many times (31k faults a student's probes -> 6k, measured).
Nothing else changes: the same bytes, the same limits."""
import ctypes

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
MAPPED = 32 * 2**20  # blocks this large or larger are still mapped on their own (glibc's ceiling)
KEPT = 2**30  # the heap's free top is handed back only past this
TUNABLES = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}  # the zygote's environment (see above)


def keep_freed_memory():
    """Tell glibc's malloc to keep freed blocks under MAPPED in the heap. Elsewhere (musl, macOS),
    nothing: the grade never depends on it, only its speed."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this interpreter runs on
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, MAPPED)
    mallopt(M_TRIM_THRESHOLD, KEPT)
