"""The cost model: an op's floating-point operations from its tensors' shapes, as a registry of
formulas keyed by op name (the idea of PyTorch's utils/flop_counter.py). The runtime records
these in the trace; the timeline turns them into time. Imports nothing from either."""

FORMULAS = {}


def formula(*names):
    def register(function):
        for name in names:
            FORMULAS[name] = function
        return function
    return register


@formula("linear")
def _linear(inputs, outputs):
    """x @ W.T with W of shape (out, in): 2 per multiply-add."""
    return 2 * inputs[0].numel() * inputs[1].shape[0] if len(inputs) >= 2 else _elementwise(inputs, outputs)


@formula("matmul", "mm", "bmm", "addmm", "__matmul__", "__rmatmul__")
def _matrix_product(inputs, outputs):
    if len(inputs) >= 2 and inputs[-1].dim() >= 2:
        return 2 * inputs[-2].numel() * inputs[-1].shape[-1]
    return _elementwise(inputs, outputs)


def _elementwise(inputs, outputs):
    """One per output element (or input element, for ops that return none)."""
    return sum(t.numel() for t in outputs) or sum(t.numel() for t in inputs)


def flops(name, inputs, outputs):
    """An op's floating-point operations under the cost model."""
    return FORMULAS.get(name, _elementwise)(inputs, outputs)
