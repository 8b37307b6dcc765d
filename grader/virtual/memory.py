"""Each virtual GPU's memory: the bytes of the storages that live on it, their peak, and its
capacity, past which an allocation fails with CUDA's out-of-memory error."""
import weakref

import torch

CAPACITY = 80 * 2**30  # bytes of memory a virtual GPU has by default (an 80 GB card); host memory bounds real use


class Memory:
    def __init__(self, count, capacity=CAPACITY):
        self.capacity = capacity
        self.allocated = [0] * count  # per GPU: bytes of its live storages
        self.peak = [0] * count  # per GPU: the most allocated since the start or reset_peak
        self.fraction = [1.0] * count  # per GPU: the share of its capacity this process may allocate
        self._counted = {}  # weakref to each counted storage -> (GPU, bytes), until it is freed

    def place(self, storage, index, previous=None):
        """Count `storage` on GPU `index` until it is freed; `previous`: the GPU it lived on, if any
        (a storage moved in place, which is rare, takes its bytes with it)."""
        key = weakref.ref(storage)  # equal to the counted ref while the storage lives
        nbytes = storage.nbytes() if previous is None else self._counted[key][1]
        self.check_room(index, nbytes)
        if previous is None:
            self._counted[weakref.ref(storage, self._free)] = index, nbytes
        else:
            self._counted[key] = index, nbytes
            self.allocated[previous] -= nbytes
        self.allocated[index] += nbytes
        self.peak[index] = max(self.peak[index], self.allocated[index])

    def check_room(self, index, nbytes):
        """CUDA's out-of-memory error past the GPU's capacity, or the share of it that
        set_per_process_memory_fraction allows (host memory may run out first)."""
        limit = int(self.capacity * self.fraction[index])
        if self.allocated[index] + nbytes > limit:
            share = f" (set_per_process_memory_fraction({self.fraction[index]:g}))" if self.fraction[index] < 1 else ""
            raise torch.OutOfMemoryError(
                f"CUDA out of memory. Tried to allocate {nbytes / 2**20:.2f} MiB. GPU {index} has a total capacity "
                f"of {self.capacity / 2**30:.2f} GiB of which {(limit - self.allocated[index]) / 2**20:.2f} MiB is "
                f"free to this process{share}. Of the allocated memory {self.allocated[index] / 2**20:.2f} MiB is "
                "allocated by PyTorch.")

    def reset_peak(self, index):
        self.peak[index] = self.allocated[index]

    def _free(self, ref):
        index, nbytes = self._counted.pop(ref)
        self.allocated[index] -= nbytes
