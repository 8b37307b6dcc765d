"""Part 2: five SGD steps on a fixed batch, the target on the last GPU."""
import math

from grader.checks import expect, fail, rubric
from grader.probes import LR, STEPS

HINT = "handout Part 2"


def _losses(probe):
    """The losses train() returned, as floats whenever they can be read as such."""
    losses = probe("train")["losses"]
    if "values" not in losses:
        fail(f"train() returned {losses['problem']}; expected a list of {STEPS} floats, one loss.item() "
             f"per step ({HINT})")
    return losses["values"]


@rubric("part2.losses_returned")
def test_losses_returned(probe):
    losses = _losses(probe)
    problem = probe("train")["losses"]["problem"]
    expect(problem is None, f"train() returned {problem}")
    expect(len(losses) == STEPS, f"train(..., steps={STEPS}) returned {len(losses)} losses; expected {STEPS}, "
                                 "one per step (use the `steps` argument)")
    bad = [v for v in losses if isinstance(v, str)]
    expect(not bad, f"train() returned non-finite losses {bad}: the training diverged")


@rubric("part2.loss_decreases")
def test_loss_decreases(probe):
    losses = [v for v in _losses(probe) if not isinstance(v, str)]
    expect(len(losses) >= 2, f"train() returned {len(losses)} finite losses; at least two are needed")
    expect(losses[-1] < losses[0],
           f"on a fixed batch the loss went from {losses[0]:.5f} to {losses[-1]:.5f}; it should fall: "
           f"zero the gradients, call backward() and optimizer.step() every step ({HINT})")


@rubric("part2.matches_sgd")
def test_matches_sgd(probe):
    facts = probe("train")
    losses, reference = _losses(probe), facts["reference_losses"]
    shown = ", ".join(f"{v:.5f}" for v in reference)
    # Compared over the steps train() took: a wrong count is losses_returned's finding.
    expect(all(isinstance(v, float) and math.isclose(v, r, rel_tol=1e-5, abs_tol=1e-7) for v, r in zip(losses, reference)),
           f"the losses {[round(v, 5) if isinstance(v, float) else v for v in losses]} differ from those of "
           f"SGD(lr={LR}) with MSELoss on your model from the same start: [{shown}]. Use "
           f"optim.SGD(model.parameters(), lr=lr), optimizer.zero_grad() each step, and record each loss "
           f"before its step ({HINT})")
    expect(facts["weight_error"] < 1e-3,
           f"the losses match, but the final weights differ from SGD(lr={LR})'s by up to {facts['weight_error']:.3g}")


@rubric("part2.target_on_last_gpu")
def test_target_on_last_gpu(probe):
    facts = probe("train")
    if facts["cpu_target_error"]:
        fail(f"train() must move the CPU target to the last GPU itself ({HINT}: y.to(device1)); "
             f"{facts['cpu_target_error']}")
    wrong = [f"{role} on {facts['params'][role]} has its gradient on {device}"
             for role, device in facts["grads"].items() if device is not None and device != facts["params"][role]]
    expect(not wrong, "; ".join(wrong))
    expect(any(facts["grads"].values()), "after train() no parameter has a gradient: was backward() called?")
