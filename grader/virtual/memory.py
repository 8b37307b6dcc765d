"""Each virtual GPU's memory, booked as torch's CUDA caching allocator books it
(c10/cuda/CUDACachingAllocator.cpp), without the memory itself: every block is rounded up to 512
bytes; requests up to 1 MiB are cut from 2 MiB segments of the small pool, requests of 1 to 10 MiB
from 20 MiB segments of the large pool, larger ones get a segment rounded up to 2 MiB; a freed
block stays reserved, cached for the next request of its size made on its stream, until
`empty_cache`; past the GPU's capacity (or its per-process fraction) the cache is released and the
allocation retried once before CUDA's out-of-memory error. So memory_allocated, memory_reserved
and memory_stats answer the figures two real GPUs would."""
import bisect
import functools
import threading
import weakref

import torch

CAPACITY = 80 * 2**30  # bytes of memory a virtual GPU has by default (an 80 GB card); host memory bounds real use
MIN_BLOCK = 512  # every block is a multiple of 512 bytes
SMALL_SIZE = 2**20  # the largest request of the small pool...
SMALL_BUFFER = 2 * 2**20  # ... whose segments are 2 MiB
MIN_LARGE_ALLOC = 10 * 2**20  # requests from 1 to 10 MiB get a segment of 20 MiB, to be split
LARGE_BUFFER = 20 * 2**20
ROUND_LARGE = 2 * 2**20  # larger requests: a segment of their size rounded up to 2 MiB
ONE_EXABYTE = 2**60
# The statistics torch keeps for each pool ("all", "small_pool", "large_pool"), by their names in memory_stats.
STATS = ("allocation", "segment", "active", "inactive_split", "allocated_bytes", "reserved_bytes", "active_bytes",
         "inactive_split_bytes", "requested_bytes")
POOLS = ("all", "small_pool", "large_pool")


def round_size(nbytes):
    return max(MIN_BLOCK, -(-nbytes // MIN_BLOCK) * MIN_BLOCK)


def segment_size(size):
    """The bytes cudaMalloc is asked for when no cached block fits a (rounded) request."""
    if size <= SMALL_SIZE:
        return SMALL_BUFFER
    if size < MIN_LARGE_ALLOC:
        return LARGE_BUFFER
    return -(-size // ROUND_LARGE) * ROUND_LARGE


def format_size(nbytes):
    """A size as torch's allocator writes it in its messages."""
    if nbytes <= 1024:
        return f"{nbytes} bytes"
    for unit, scale in (("KiB", 2**10), ("MiB", 2**20)):
        if nbytes <= scale * 1024:
            return f"{nbytes / scale:.2f} {unit}"
    return f"{nbytes / 2**30:.2f} GiB"


class _Stat:
    __slots__ = ("current", "peak", "allocated", "freed")

    def __init__(self):
        self.current = self.peak = self.allocated = self.freed = 0

    def add(self, amount):
        self.current += amount
        if amount > 0:
            self.allocated += amount
            self.peak = max(self.peak, self.current)
        else:
            self.freed -= amount

    def as_dict(self):
        return {"current": self.current, "peak": self.peak, "allocated": self.allocated, "freed": self.freed}


class _Block:
    """A block of a segment: its neighbours in the segment (`prev`, `next`) are merged with it when
    both are free; a segment is released only when it is one free block."""
    __slots__ = ("size", "requested", "stream", "small", "address", "prev", "next", "allocated")

    def __init__(self, size, stream, small, address):
        self.size, self.stream, self.small, self.address = size, stream, small, address
        self.requested, self.prev, self.next, self.allocated = 0, None, None, False

    def is_split(self):
        return self.prev is not None or self.next is not None


def _order(block):
    """Cached blocks are searched by stream, then size (best fit), then address, as torch's are."""
    return block.stream, block.size, block.address


def _locked(method):
    """Run an allocator's method under its lock. A free that comes meanwhile (a storage the garbage
    collector or another thread let go) waits in `deferred` and is done before the lock is let go."""
    @functools.wraps(method)
    def locked(self, *args):
        with self.lock:
            try:
                return method(self, *args)
            finally:
                self._drain()

    return locked


class _Allocator:
    """One GPU's caching allocator, its blocks and statistics as torch's DeviceCachingAllocator keeps them."""

    def __init__(self, index, capacity):
        self.index, self.capacity = index, capacity
        self.fraction = None  # set_per_process_memory_fraction's, once set
        self.cached = {True: [], False: []}  # small pool?: its free blocks, in _order
        self.stats = {name: {pool: _Stat() for pool in POOLS} for name in STATS}
        self.counts = dict.fromkeys(("num_alloc_retries", "num_ooms", "num_sync_all_streams", "num_device_alloc",
                                     "num_device_free", "num_oom_rejections"), 0)
        self.oversize = {"oversize_allocations": _Stat(), "oversize_segments": _Stat()}  # none: blocks always split
        self.top = 0  # the next segment's address: addresses only order blocks
        self.lock, self.deferred = threading.Lock(), []

    def limit(self):
        return self.capacity if self.fraction is None else int(self.fraction * self.capacity)

    def current(self, name):
        return self.stats[name]["all"].current

    @_locked
    def malloc(self, nbytes, stream):
        if nbytes >= ONE_EXABYTE:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate more than 1EB memory.")
        size = round_size(nbytes)
        small = size <= SMALL_SIZE
        block = self._take_cached(size, stream, small) or self._segment(size, stream, small)
        return self._use(block, size, nbytes)

    @_locked
    def check_room(self, nbytes, stream):
        """CUDA's out-of-memory error where `nbytes` would not fit, as malloc would raise it."""
        size = round_size(nbytes)
        if self._cached_index(size, stream, size <= SMALL_SIZE) is None and not self._room(segment_size(size)):
            self._retry(segment_size(size))

    def free(self, block):
        self.deferred.append(block)
        if self.lock.acquire(blocking=False):  # else its holder frees it
            try:
                self._drain()
            finally:
                self.lock.release()

    def _drain(self):
        while self.deferred:
            self._free(self.deferred.pop())

    @_locked
    def empty_cache(self):
        self._release_cached()

    @_locked
    def as_dict(self):
        """memory_stats_as_nested_dict's answer, in torch's keys."""
        return {**self.counts, "max_split_size": -1,
                **{name: {pool: stat.as_dict() for pool, stat in pools.items()} for name, pools in self.stats.items()},
                **{name: stat.as_dict() for name, stat in self.oversize.items()}}

    @_locked
    def reset_peak(self):
        for stat in self._every_stat():
            stat.peak = stat.current

    @_locked
    def reset_accumulated(self):
        for stat in self._every_stat():
            stat.allocated = stat.freed = 0
        self.counts = dict.fromkeys(self.counts, 0)

    def _every_stat(self):
        return [stat for pools in self.stats.values() for stat in pools.values()] + list(self.oversize.values())

    def _add(self, small, **amounts):
        for name, amount in amounts.items():
            self.stats[name]["all"].add(amount)
            self.stats[name]["small_pool" if small else "large_pool"].add(amount)

    # -- the pools of cached blocks -----------------------------------------------------------
    def _cached_index(self, size, stream, small):
        """Where the smallest cached block of `stream` that holds `size` bytes is, if any."""
        blocks = self.cached[small]
        i = bisect.bisect_left(blocks, (stream, size, -1), key=_order)
        return i if i < len(blocks) and blocks[i].stream == stream else None

    def _take_cached(self, size, stream, small):
        i = self._cached_index(size, stream, small)
        return None if i is None else self.cached[small].pop(i)

    def _cache(self, block):
        bisect.insort(self.cached[block.small], block, key=_order)

    def _uncache(self, block):
        blocks = self.cached[block.small]
        del blocks[bisect.bisect_left(blocks, _order(block), key=_order)]

    # -- segments -----------------------------------------------------------------------------
    def _room(self, nbytes):
        return self.current("reserved_bytes") + nbytes <= self.limit()

    def _segment(self, size, stream, small):
        """A new segment for a request no cached block holds: cudaMalloc, retried once after the
        cache is released, or CUDA's out-of-memory error."""
        nbytes = segment_size(size)
        if not self._room(nbytes):
            self._retry(nbytes)
        block = _Block(nbytes, stream, small, self.top)
        self.top += nbytes
        self._add(small, segment=1, reserved_bytes=nbytes)
        self.counts["num_device_alloc"] += 1
        return block

    def _retry(self, nbytes):
        self._release_cached()
        self.counts["num_alloc_retries"] += 1
        if not self._room(nbytes):
            self.counts["num_ooms"] += 1
            raise torch.OutOfMemoryError(self._out_of_memory(nbytes))

    def _release_cached(self):
        """Release every cached segment that is one free block (empty_cache, or before a retry)."""
        self.counts["num_sync_all_streams"] += 1
        for small, blocks in self.cached.items():
            kept = [block for block in blocks if block.is_split()]
            for block in blocks:
                if not block.is_split():
                    self._add(small, segment=-1, reserved_bytes=-block.size)
                    self.counts["num_device_free"] += 1
            self.cached[small] = kept

    def _out_of_memory(self, nbytes):
        allocated, reserved = self.current("allocated_bytes"), self.current("reserved_bytes")
        allowed = "" if self.fraction is None else f"{format_size(self.limit())} allowed; "
        return (f"CUDA out of memory. Tried to allocate {format_size(nbytes)}. GPU {self.index} has a total capacity "
                f"of {format_size(self.capacity)} of which {format_size(self.capacity - reserved)} is free. Including "
                f"non-PyTorch memory, this process has {format_size(reserved)} memory in use. {allowed}Of the "
                f"allocated memory {format_size(allocated)} is allocated by PyTorch, and "
                f"{format_size(reserved - allocated)} is reserved by PyTorch but unallocated. If reserved but "
                "unallocated memory is large try setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid "
                "fragmentation.  See documentation for Memory Management  "
                "(https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)")

    # -- blocks in use ------------------------------------------------------------------------
    def _use(self, block, size, nbytes):
        """Hand out `block` for a request of `size` (rounded) bytes, splitting off what it does not need."""
        was_split = block.is_split()
        remaining = block.size - size
        splits = remaining >= MIN_BLOCK if block.small else remaining > SMALL_SIZE  # a large block keeps up to 1 MiB
        if splits:
            rest = _Block(remaining, block.stream, block.small, block.address + size)
            rest.prev, rest.next = block, block.next
            if block.next is not None:
                block.next.prev = rest
            block.next, block.size = rest, size
            self._cache(rest)
            if was_split:
                self._add(block.small, inactive_split_bytes=-size)
            else:
                self._add(block.small, inactive_split_bytes=remaining, inactive_split=1)
        elif was_split:
            self._add(block.small, inactive_split_bytes=-block.size, inactive_split=-1)
        block.allocated, block.requested = True, nbytes
        self._add(block.small, allocation=1, allocated_bytes=block.size, active=1, active_bytes=block.size,
                  requested_bytes=nbytes)
        return block

    def _free(self, block):
        """Back to the cache, merged with the free blocks beside it in its segment."""
        size, requested = block.size, block.requested
        block.allocated = False
        self._add(block.small, allocation=-1, allocated_bytes=-size)
        split_blocks, split_bytes = 0, 0
        for neighbour in (block.prev, block.next):
            if neighbour is not None and not neighbour.allocated:
                self._merge(block, neighbour)
                split_blocks, split_bytes = split_blocks - 1, split_bytes - neighbour.size
        if block.is_split():
            split_blocks, split_bytes = split_blocks + 1, split_bytes + block.size
        self._cache(block)
        self._add(block.small, inactive_split=split_blocks, inactive_split_bytes=split_bytes, active=-1,
                  active_bytes=-size, requested_bytes=-requested)

    def _merge(self, block, neighbour):
        self._uncache(neighbour)
        if neighbour is block.prev:
            block.address, block.prev = neighbour.address, neighbour.prev
            if block.prev is not None:
                block.prev.next = block
        else:
            block.next = neighbour.next
            if block.next is not None:
                block.next.prev = block
        block.size += neighbour.size


class _Counted:
    __slots__ = ("index", "nbytes", "block")

    def __init__(self, index, nbytes, block):
        self.index, self.nbytes, self.block = index, nbytes, block


class Memory:
    """The virtual GPUs' allocators, and the block each GPU storage holds until it is freed."""

    def __init__(self, count, capacity=CAPACITY):
        self.capacity = capacity
        self.gpus = [_Allocator(index, capacity) for index in range(count)]
        self._counted = {}  # weakref to each counted storage -> _Counted, until the storage is freed

    def place(self, storage, index, stream):
        """Allocate `storage`'s bytes on GPU `index` from `stream`'s cache; a storage that had a block
        (on another GPU, or before an op grew it) lets it go after, as torch's resize does."""
        key = weakref.ref(storage)
        nbytes = storage.nbytes()
        block = self.gpus[index].malloc(nbytes, stream) if nbytes else None  # a storage of no bytes has no block
        old = self._counted.get(key)
        if old is None:
            key = weakref.ref(storage, self._freed)
        self._counted[key] = _Counted(index, nbytes, block)  # an equal key already there is kept, with its callback
        if old is not None:
            self._release(old)

    def grown(self, storage):
        """Whether an op grew `storage` since it was counted (`out=`, `resize_`)."""
        counted = self._counted.get(weakref.ref(storage))
        return counted is not None and counted.nbytes != storage.nbytes()

    def check_room(self, index, nbytes, stream=0):
        self.gpus[index].check_room(nbytes, stream)

    def _freed(self, ref):
        self._release(self._counted.pop(ref))

    def _release(self, counted):
        if counted.block is not None:
            self.gpus[counted.index].free(counted.block)
