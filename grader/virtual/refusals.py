"""What virtual GPUs cannot honestly imitate, each refused with one line that begins REFUSAL and
says what to do instead. README.md, "What it does not model", lists exactly these: a refusal is
a point a student cannot practise here, so each is kept for what the CPU truly cannot do."""
import functools
import importlib
import inspect

import torch
import torch.autograd.profiler

REFUSAL = "virtual GPUs do not model"
INSTEAD = "leave it out, or run on real GPUs"
TIMELINE = "python -m grader.timeline draws each GPU's modelled work instead"
# Whole functions refused: (module, names) -> what they are and what to do instead.
REFUSED = {
    ("torch.cuda.nvtx", "range_push range_pop range mark"):
        f"NVTX ranges (they mark a real GPU's timeline for Nsight): {INSTEAD}",
    ("torch.cuda.profiler", "start stop profile init"):
        f"the CUDA profiler (it starts Nsight's capture of a real GPU): {TIMELINE}",
    ("torch.cuda", "CUDAGraph graph make_graphed_callables graph_pool_handle"):
        f"CUDA graphs (they capture and replay a real GPU's kernels): {INSTEAD}",
    ("torch.cuda", "utilization temperature power_draw clock_rate memory_usage list_gpu_processes"):
        "NVML's readings of a real GPU (utilization, temperature, power, clocks, processes): "
        "torch.cuda.memory_allocated gives memory, python -m grader.timeline each GPU's busy time",
    ("torch", "compile"): f"torch.compile (it generates kernels for a real GPU): {INSTEAD}",
    ("torch.jit", "script trace"):
        f"TorchScript (a scripted or traced model runs outside Python, where virtual GPUs live): {INSTEAD}",
}


# What torch's own functions raise when they reach for a CUDA driver there is not: on a CPU-only
# torch, and on a CUDA build without a driver (a laptop, Colab's CPU runtime).
NO_DRIVER = ("torch._C' has no attribute '_cuda", "compiled without CUDA", "not compiled with CUDA",
             "dummy base class", "nvidia-ml-py", "pynvml", "CUDA driver", "NVIDIA driver",
             "no CUDA GPUs are available", "Invalid device argument")


def refused(what):
    """The exception a refusal raises."""
    return RuntimeError(f"{REFUSAL} {what}")


def install(patcher):
    for (module, names), what in REFUSED.items():
        module = importlib.import_module(module)
        for name in names.split():
            if hasattr(module, name):
                patcher.setattr(module, name, refusing(what))
    patcher.setattr(torch.profiler, "profile", _cpu_profiler_only(torch.profiler.profile))
    for owner, refuse in ((torch.autograd.profiler.profile, _legacy_cuda_profiling),
                          (torch.amp.autocast_mode.autocast, _cuda_autocast)):
        patcher.setattr(owner, "__init__", _checked(owner.__init__, refuse))
    for module, name, value in _torch_cuda_functions():  # last: the runtime's own stand-ins are in place
        patcher.setattr(module, name, _driver_checked(f"{module.__name__}.{name}", value))


def _torch_cuda_functions():
    """(module, name, function) of each of torch.cuda's own public functions there now."""
    return [(module, name, value) for module in (torch.cuda, torch.cuda.memory)
            for name, value in list(vars(module).items())
            if not name.startswith("_") and inspect.isfunction(value) and value.__module__.startswith("torch")]


@functools.cache
def _driver_checked(name, function):
    """torch.cuda's own `function`, which fails on a CPU-only torch when it reaches for the CUDA
    driver: then with a refusal that names it, not with torch's internal error. Made once per
    function, when this module is imported (it holds nothing of a runtime): each probe, forked
    from the zygote that imported it, installs them as they are."""
    @functools.wraps(function)
    def checked(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except (AttributeError, RuntimeError, AssertionError, ImportError) as error:
            if any(sign in str(error) for sign in NO_DRIVER):
                raise refused(f"{name} (it needs a real GPU's driver): {INSTEAD}") from None
            raise

    return checked


def refusing(what):
    """A function that refuses `what` when called."""
    def refuse(*args, **kwargs):
        raise refused(what)

    return refuse


def _checked(init, refuse):
    """`init`, after `refuse(*args, **kwargs)` has raised for what cannot be imitated."""
    @functools.wraps(init)
    def checked(self, *args, **kwargs):
        refuse(*args, **kwargs)
        init(self, *args, **kwargs)

    return checked


def _cpu_profiler_only(profile):
    """torch.profiler.profile, refusing to profile CUDA kernels that do not exist."""
    def profiler(*args, activities=None, **kwargs):
        if activities is not None and torch.profiler.ProfilerActivity.CUDA in activities:
            raise refused(f"CUDA kernels for torch.profiler: {TIMELINE}")
        return profile(*args, activities=activities, **kwargs)

    return profiler


def _legacy_cuda_profiling(enabled=True, *, use_cuda=False, use_device=None, **kwargs):
    if enabled and (use_cuda or (use_device is not None and str(use_device).startswith("cuda"))):
        raise refused(f"CUDA kernels for torch.autograd.profiler: {TIMELINE}")


def _cuda_autocast(device_type, dtype=None, enabled=True, cache_enabled=None):
    if device_type == "cuda" and enabled:
        raise refused(f"CUDA autocast (float16 kernels, whose numbers and speed are a real GPU's): {INSTEAD}")


class Cudart:
    """What torch.cuda.cudart() returns: the CUDA runtime library, each of whose calls needs a real GPU."""

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return refusing(f"the CUDA runtime library's own calls (torch.cuda.cudart().{name}): {INSTEAD}")


def host_memory(nbytes, device):
    """What an op on a virtual GPU gets when the host cannot allocate its result."""
    return refused(f"more GPU memory than this machine can hold ({nbytes / 2**30:.2f} GiB asked on {device}): "
                   "use a smaller batch, or run on real GPUs")


def generator(make):
    """torch.Generator, refusing a GPU's: each virtual GPU has one generator, which torch.cuda seeds."""
    def new(device="cpu"):
        if isinstance(device, int) or torch.device(device).type == "cuda":
            raise refused("torch.Generator objects of a GPU: seed the GPU's own generator with torch.cuda.manual_seed, "
                          "or draw with a CPU torch.Generator and move the result")
        return make(device)

    return new


for _module, _name, _value in _torch_cuda_functions():
    _driver_checked(f"{_module.__name__}.{_name}", _value)
