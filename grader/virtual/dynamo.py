"""No torch._dynamo on virtual GPUs. torch.compile is refused there (refusals.py), so nothing is
ever compiled; yet an optimizer imports the compiler (a second and more of CPU time, in every
probe that trains) only to turn it off: its constructor, `zero_grad` and `state_dict` through
`_disable_dynamo` guards, its `step` through a wrapper whose graph breaks do nothing outside a
compile. Here each guarded function is marked as its own disabled form (what the guard caches after
its first call), and each step wrapper is torch's own less its graph breaks. The wrapper is
replaced only when it is the one read here (its code names exactly these); real GPUs keep torch's."""
import functools
import inspect

import torch
import torch._compile
import torch.optim
from torch.optim.optimizer import _use_grad_for_differentiable


def _inner(function, name):
    return next(c for c in function.__code__.co_consts if inspect.iscode(c) and c.co_name == name)


GUARD = _inner(torch._compile._disable_dynamo, "inner")
MARK = "__dynamo_disable"  # the attribute a guard reads on the function it guards (torch/_compile.py)
STEP = _inner(_use_grad_for_differentiable, "_use_grad")
STEP_NAMES = ("torch._dynamo", "_dynamo", "cast", "Optimizer", "is_grad_enabled", "set_grad_enabled", "defaults",
              "graph_break")  # what torch's step wrapper does, all of it: grad mode and graph breaks


def install(patcher):
    same_step = sorted(STEP.co_names) == sorted(STEP_NAMES)
    for cls in _optimizers():
        for name, value in vars(cls).items():
            if getattr(value, "__code__", None) is GUARD and getattr(value.__wrapped__, MARK, None) is None:
                patcher.setattr(value.__wrapped__, MARK, value.__wrapped__)
            elif name == "step" and same_step and _unwrapped(value) is not None:
                patcher.setattr(cls, name, _rewrapped(value))


def _optimizers():
    found, classes = [], [torch.optim.Optimizer]
    while classes:
        cls = classes.pop()
        found.append(cls)
        classes.extend(cls.__subclasses__())
    return found


def _unwrapped(step):
    """The function torch's step wrapper wraps in `step`, itself or inside the hook wrapper an
    optimizer's class gets once an instance exists (Optimizer._patch_step_function); or None."""
    inner = step.__wrapped__ if getattr(step, "hooked", False) else step
    return inner.__wrapped__ if getattr(inner, "__code__", None) is STEP else None


def _rewrapped(step):
    """`step` with torch's step wrapper replaced by _step, in the hook wrapper if it had one."""
    if not getattr(step, "hooked", False):
        return _step(_unwrapped(step))
    hooked = torch.optim.Optimizer.profile_hook_step(_step(_unwrapped(step)))
    hooked.hooked = True
    return hooked


def _step(step):
    """torch's `_use_grad_for_differentiable(step)`: the step runs with grad mode on only for a
    differentiable optimizer, and the caller's grad mode comes back after it."""
    def _use_grad(*args, **kwargs):
        previous = torch.is_grad_enabled()
        try:
            torch.set_grad_enabled(args[0].defaults["differentiable"])
            return step(*args, **kwargs)
        finally:
            torch.set_grad_enabled(previous)

    return functools.update_wrapper(_use_grad, step)
