"""The copies between GPUs that nn.DataParallel makes (torch.nn.parallel.comm: broadcast, scatter,
gather), which a CPU-only torch has no code for: on virtual GPUs they are `.to()` copies, so the
runtime places and traces them as any other."""
import torch
import torch.cuda.nccl
import torch.nn.parallel._functions


def install(gpus, patcher):
    def broadcast(tensor, devices):
        with gpus.on():
            return [tensor.to(gpus.gpu(d)) for d in devices]

    def broadcast_coalesced(tensors, devices, buffer_size):
        with gpus.on():
            if any(t.get_device() != devices[0] for t in tensors):  # the source's GPU first, as torch's comm.cpp checks
                raise RuntimeError(f"All tensors must be on devices[0]: {devices[0]}")
            return [[t.to(gpus.gpu(d)) for t in tensors] for d in devices]

    def scatter(tensor, devices, chunk_sizes, dim, streams):
        with gpus.on():
            chunks = tensor.split(list(chunk_sizes), dim) if chunk_sizes else tensor.chunk(len(devices), dim)
            return [chunk.to(gpus.gpu(d)) for chunk, d in zip(chunks, devices)]

    def gather(tensors, dim, destination):
        with gpus.on():
            device = torch.device("cpu") if destination == -1 else gpus.gpu(destination)
            return torch.cat([t.to(device) for t in tensors], dim)

    for name, stand_in in (("_broadcast", broadcast), ("_broadcast_coalesced", broadcast_coalesced),
                           ("_scatter", scatter), ("_gather", gather)):
        patcher.setattr(torch._C, name, stand_in)
    patcher.setattr(torch.nn.parallel._functions, "_streams", None)  # its cache of copy streams: the runtime's own
    patcher.setattr(torch.cuda.nccl, "is_available", lambda tensors: False)  # reduce_add copies instead, silently
