"""Virtual GPUs' memory as torch's CUDA caching allocator books it, and copies that honour
non_blocking, each written as a student would write the code. The figures are real CUDA's, read
from c10/cuda/CUDACachingAllocator.cpp: 512-byte blocks, 2 MiB segments for requests up to 1 MiB,
20 MiB ones for 1 to 10 MiB, larger ones rounded up to 2 MiB, kept until empty_cache."""

import pytest
import torch
import torch.nn as nn

D0, D1 = torch.device("cuda:0"), torch.device("cuda:1")
MIB = 2**20


def test_each_tensor_takes_a_block_of_512_bytes(virtual_gpus):
    kept = [torch.empty(100, device=D1) for _ in range(10)]  # 400 bytes each
    assert torch.cuda.memory_allocated(1) == 5120
    assert torch.cuda.memory_reserved(1) == 2 * MIB  # one segment of the small pool holds them all
    assert torch.cuda.memory_stats(1)["requested_bytes.all.current"] == 4000 and len(kept) == 10


def test_freed_memory_stays_reserved_until_empty_cache_and_is_reused(virtual_gpus):
    big = torch.empty(10 * MIB, device=D1)  # 40 MiB
    assert torch.cuda.memory_allocated(1) == torch.cuda.memory_reserved(1) == 40 * MIB
    del big
    assert torch.cuda.memory_allocated(1) == 0 and torch.cuda.memory_reserved(1) == 40 * MIB
    again = torch.empty(10 * MIB, device=D1)
    assert torch.cuda.memory_reserved(1) == 40 * MIB and torch.cuda.max_memory_reserved(1) == 40 * MIB
    del again
    torch.cuda.empty_cache()
    assert torch.cuda.memory_reserved(1) == 0 and torch.cuda.mem_get_info(1)[0] == torch.cuda.mem_get_info(1)[1]


def test_the_labs_layer_reserves_a_large_and_a_small_segment(virtual_gpus):
    """An 8 MB weight is cut from a 20 MiB segment, whose rest holds the next layer's weight too."""
    nn.Linear(1000, 2000).to(D0)  # freed at once: its blocks stay cached
    assert torch.cuda.memory_reserved(0) == 22 * MIB and torch.cuda.memory_allocated(0) == 0
    first, second = nn.Linear(1000, 2000).to(D0), nn.Linear(2000, 1000).to(D0)
    assert torch.cuda.memory_reserved(0) == 22 * MIB
    assert torch.cuda.memory_allocated(0) == 2 * 8_000_000 + 8192 + 4096
    stats = torch.cuda.memory_stats(0)
    assert (stats["segment.large_pool.current"], stats["segment.small_pool.current"]) == (1, 1)
    assert stats["reserved_bytes.large_pool.current"] == 20 * MIB and stats["active_bytes.all.current"] == 16_012_288
    assert stats["inactive_split_bytes.large_pool.current"] == 20 * MIB - 16_000_000 and first is not second


def test_a_tensor_grown_by_out_or_resize_is_counted(virtual_gpus):
    a, b = torch.ones(1000, 10, device=D1), torch.ones(10, 1000, device=D1)
    before = torch.cuda.memory_allocated(1)
    result = torch.empty(0, device=D1)
    torch.mm(a, b, out=result)  # grows result to 1000 x 1000
    assert torch.cuda.memory_allocated(1) - before == 4_000_256
    grown = torch.empty(10, device=D1)
    grown.resize_(1000, 1000)
    assert torch.cuda.memory_allocated(1) - before == 2 * 4_000_256 and result.shape == grown.shape


def test_the_out_of_memory_error_is_torchs_and_counted(virtual_gpus):
    kept = torch.empty(MIB, device=D1)
    with pytest.raises(torch.cuda.OutOfMemoryError) as raised:
        torch.empty(2**38, device=D1)  # 1 TiB
    assert str(raised.value).startswith(
        "CUDA out of memory. Tried to allocate 1024.00 GiB. GPU 1 has a total capacity of 80.00 GiB of which "
        "79.98 GiB is free. Including non-PyTorch memory, this process has 20.00 MiB memory in use. Of the allocated "
        "memory 4.00 MiB is allocated by PyTorch, and 16.00 MiB is reserved by PyTorch but unallocated.")
    stats = torch.cuda.memory_stats(1)
    assert (stats["num_ooms"], stats["num_alloc_retries"], torch.cuda.memory_stats(0)["num_ooms"]) == (1, 1, 0)
    torch.cuda.reset_accumulated_memory_stats(1)
    assert torch.cuda.memory_stats(1)["num_ooms"] == 0 and kept.numel() == MIB


def test_a_memory_fraction_limits_what_is_reserved(virtual_gpus):
    """The fraction bounds segments, not tensors: 30 MiB allows one 20 MiB segment, and the OOM says so."""
    torch.cuda.set_per_process_memory_fraction(30 * MIB / torch.cuda.get_device_properties(0).total_memory, 0)
    first = torch.empty(2 * MIB, device=D0)  # 8 MiB, cut from a 20 MiB segment
    second = torch.empty(2 * MIB, device=D0)  # from the same segment's rest
    with pytest.raises(torch.cuda.OutOfMemoryError, match=r"Tried to allocate 20\.00 MiB\. .* 30\.00 MiB allowed; "):
        torch.empty(2 * MIB, device=D0)
    with pytest.raises(TypeError, match="must be `float`"):
        torch.cuda.set_per_process_memory_fraction(1, 0)
    assert torch.cuda.memory_reserved(0) == 20 * MIB and first.shape == second.shape


def test_a_full_gpu_releases_its_cache_and_retries(virtual_gpus):
    """A segment that does not fit beside the cached ones is retried once the cache is released."""
    torch.cuda.set_per_process_memory_fraction(30 * MIB / torch.cuda.get_device_properties(1).total_memory, 1)
    torch.empty(4 * MIB, device=D1)  # 16 MiB, freed at once: cached
    assert torch.cuda.memory_reserved(1) == 16 * MIB
    kept = torch.empty(5 * MIB, device=D1)  # 20 MiB: does not fit beside the cached 16 MiB
    stats = torch.cuda.memory_stats(1)
    assert (stats["num_alloc_retries"], stats["num_ooms"], stats["reserved_bytes.all.current"]) == (1, 0, 20 * MIB)
    assert stats["num_device_alloc"] == 2 and stats["num_device_free"] == 1 and kept.numel() == 5 * MIB


def test_memory_summary_is_laid_out_as_torchs(virtual_gpus):
    kept = torch.empty(100, device=D1)
    summary = torch.cuda.memory_summary(1)
    assert "PyTorch CUDA memory summary, device ID 1" in summary and "CUDA OOMs: 0" in summary
    assert "| Allocated memory      |    512 B   |    512 B   |    512 B   |      0 B   |" in summary
    assert "| GPU reserved memory   |   2048 KiB |   2048 KiB |   2048 KiB |      0 B   |" in summary
    assert kept.numel() == 100


def test_torch_accelerator_reads_the_same_books(virtual_gpus):
    kept = torch.empty(100, device=D1)
    assert torch.accelerator.memory_reserved(1) == 2 * MIB and torch.accelerator.memory_allocated(1) == 512
    assert torch.accelerator.memory_stats(1)["segment.all.current"] == 1 and kept.numel() == 100
    assert torch.accelerator.get_memory_info(1) == torch.cuda.mem_get_info(1)


def _host_wait(gpus, call):
    """(seconds the host waited for a GPU during `call`, its result), from the virtual clocks' own
    account: whether the host waited is the behaviour, and it is exact, where a timing is noise."""
    before = gpus.clocks.waited
    out = call()
    return gpus.clocks.waited - before, out


def test_a_non_blocking_copy_from_pinned_memory_does_not_make_the_host_wait(virtual_gpus):
    """Only a pinned source makes `.to(non_blocking=True)` asynchronous; from pageable memory it is
    as synchronous as a blocking copy, as on CUDA."""
    pinned, pageable = torch.randn(2048, 4096).pin_memory(), torch.randn(2048, 4096)
    blocking, _ = _host_wait(virtual_gpus, lambda: pinned.to(D0))
    queued, on_gpu = _host_wait(virtual_gpus, lambda: pinned.to(D0, non_blocking=True))
    in_flight = not torch.cuda.current_stream(0).query()
    waited, _ = _host_wait(virtual_gpus, lambda: torch.cuda.synchronize(0))  # the host waits for the copy only here
    unpinned, _ = _host_wait(virtual_gpus, lambda: pageable.to(D0, non_blocking=True))
    assert queued == 0 and blocking > 0 and waited > 0 and unpinned > 0, (queued, blocking, waited, unpinned)
    assert in_flight and torch.cuda.current_stream(0).query()
    assert torch.equal(on_gpu.cpu(), pinned)


def test_a_non_blocking_copy_to_the_host_is_pinned_and_seen_after_a_wait(virtual_gpus):
    """`.to("cpu", non_blocking=True)` returns at once into pinned memory; the host reading it
    (here, summing it) first waits for the GPU's stream to finish the copy."""
    on_gpu = torch.randn(2048, 4096, device=D1)
    torch.cuda.synchronize(1)
    blocking, _ = _host_wait(virtual_gpus, lambda: on_gpu.to("cpu"))
    queued, host = _host_wait(virtual_gpus, lambda: on_gpu.to("cpu", non_blocking=True))
    assert host.is_pinned() and host.shape == (2048, 4096)
    read, total = _host_wait(virtual_gpus, lambda: host.sum())
    assert queued == 0 and blocking > 0 and read > 0, (queued, blocking, read)
    assert virtual_gpus.trace.of("sync")[-1].waits_for() == ("stream", ("cuda:1", 0))
    assert total.item() == pytest.approx(on_gpu.sum().item(), rel=1e-4) and not on_gpu.cpu().is_pinned()


def test_a_non_blocking_copy_into_a_pinned_tensor_is_asynchronous(virtual_gpus):
    on_gpu, pinned = torch.randn(2048, 4096, device=D1), torch.empty(2048, 4096).pin_memory()
    torch.cuda.synchronize(1)
    blocking, _ = _host_wait(virtual_gpus, lambda: pinned.copy_(on_gpu))
    queued, _ = _host_wait(virtual_gpus, lambda: pinned.copy_(on_gpu, non_blocking=True))
    into_pageable, _ = _host_wait(virtual_gpus, lambda: torch.empty(2048, 4096).copy_(on_gpu, non_blocking=True))
    assert queued == 0 and blocking > 0 and into_pageable > 0, (queued, blocking, into_pageable)


def test_the_grader_finds_the_hosts_wait_at_the_read_not_at_a_non_blocking_copy(virtual_gpus):
    """The trace says what the host did: the grader's order of waits (checks/flow.py) has no wait at
    the non_blocking copy to the host, and one where the host reads what it copied."""
    from grader.checks.flow import Order

    out = torch.randn(64, 64, device=D1) @ torch.randn(64, 64, device=D1)
    host = out.to("cpu", non_blocking=True)
    print(host.sum())
    events = virtual_gpus.trace.events
    assert [(events[i].kind, events[i].name) for i, _ in Order(events).waits] == [("sync", "sum")]


def test_before_cuda_is_used_nothing_is_allocated_and_asking_starts_nothing(virtual_gpus):
    """torch's own memory_stats answers {} before CUDA is initialised, so memory_allocated is 0,
    and asking does not initialise it (checkpointing and seeding read is_initialized)."""
    assert torch.cuda.memory_allocated() == 0 and torch.cuda.max_memory_allocated(1) == 0
    assert torch.cuda.memory_stats() == {} and torch.cuda.memory_reserved() == 0
    assert not torch.cuda.is_initialized()
    x = torch.ones(1, device=D1)
    assert torch.cuda.is_initialized() and torch.cuda.memory_allocated(1) == 512 and x.is_cuda
