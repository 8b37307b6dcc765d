"""Part 2: SGD steps on the fixed batch the grader gives, the target on the last GPU.

The grader draws the weights and the batch itself, so the right losses and final weights are
its own computation (grader.reference), never a run of the submission's code."""
import math

from grader import reference
from grader.checks import expect, fail, rubric, trace
from grader.checks.flow import Flow
from grader.contract import BATCH, DEFAULT_LR, LR, SEEDS, SHAPES, STEPS

HINT = "handout Part 2"
CALL = f"train(model, x, y, steps={STEPS}, lr={LR})"


def _losses(facts):
    """The losses train() returned, as floats whenever they can be read as such."""
    losses = facts.losses
    if losses.values is None:
        fail(f"{CALL} returned {losses.problem}; expected a list of {STEPS} floats, one loss.item() per "
             f"step ({HINT})")
    return losses.values


def _measured(facts, needs=frozenset()):
    """Whether the returned losses are values train() itself computed: each one read from a tensor
    (`.item()`, `float()`, or all at once with `.tolist()`) during train(), in order, from data
    that came from all of `needs` ("x", "y": the batch given); or tensors that autograd produced."""
    losses = facts.losses
    if losses.tensors:  # (losses_returned fails them: not floats)
        return losses.computed
    read = Flow(trace(facts.events).events).read_values(frozenset(needs))
    position = 0
    for value in losses.values:
        while position < len(read) and not (isinstance(value, float) and read[position] == value):
            position += 1
        if position == len(read):
            return False
        position += 1
    return True


def _unused_batch(facts):
    """The parts of the given batch (x, y) that no computation or copy of train() read."""
    used = {label for e in trace(facts.events).events for label in (e.reads or ())}
    return [label for label in ("x", "y") if label not in used]


@rubric("part2.losses_returned")
def test_losses_returned(probe):
    facts = probe("train")
    losses = _losses(facts)
    expect(facts.losses.problem is None, f"{CALL} returned {facts.losses.problem}")
    expect(len(losses) == STEPS, f"{CALL} returned {len(losses)} losses; expected {STEPS}, one per step "
                                 "(use the `steps` argument)")
    bad = [v for v in losses if isinstance(v, str)]
    expect(not bad, f"{CALL} returned non-finite losses {bad}: the training diverged")
    expect(_measured(facts, {"w1", "w2"}), f"{CALL} returned {losses}, but train() computed no such losses from "
                                           "the model's output: return loss.item() of each step, as computed")


def _final_weights(grading):
    """train()'s final weights, as the float32 arrays it returned."""
    blobs = grading.outcome("train").blobs
    return {role: reference.tensor(blobs, role, shape) for role, shape in SHAPES.items()}


@rubric("part2.loss_decreases")
def test_loss_decreases(probe, grading):
    """The loss the grader computes itself, before and after train(), must fall; and the losses
    train() reports must be the ones it measured, on the batch it was given."""
    facts = probe("train")
    unused = _unused_batch(facts)
    expect(not unused, f"train() did not use the batch it was given: nothing it computed read "
                       f"{' or '.join(unused)}. Train on the x and y passed in, every step ({HINT})")
    losses = [v for v in _losses(facts) if not isinstance(v, str)]
    expect(_measured(facts), "the losses train() returned are not the ones it computed, so the grader cannot "
                             "see the loss fall: return loss.item() of each step")
    expect(_measured(facts, {"x", "y"}),
           "the losses train() returned were not computed from the model's output on the x it was given against the "
           f"y it was given: compute each step's loss as loss_fn(model(x), y) on that batch ({HINT})")
    before = reference.losses(SEEDS["train"], BATCH, 1, LR)[0]  # the loss before the first step
    after = reference.loss(SEEDS["train"], BATCH, _final_weights(grading))
    expect(after < before,
           f"on the batch it was given, the loss of the model's weights went from {before:.5f} before train() to "
           f"{after:.5f} after it (the grader's own computation); training should lower it: zero the "
           f"gradients, call backward() and optimizer.step() every step ({HINT})")
    expect(len(losses) >= 2 and losses[-1] < losses[0],
           f"{CALL} returned the losses {losses}; over the steps they should fall ({HINT})")


def _close(losses, expected):
    return len(losses) >= 1 and all(isinstance(v, float) and math.isclose(v, r, rel_tol=1e-4, abs_tol=1e-6)
                                    for v, r in zip(losses, expected))


def _diagnosis(facts, losses, steps):
    """What the losses are, when they are not SGD's at LR: told apart by the grader's own runs of
    the common mistakes on the same weights and batch."""
    seed = SEEDS["train"]
    if _close(losses, reference.losses(seed, BATCH, steps, DEFAULT_LR)):
        return (f"these are SGD's losses at lr={DEFAULT_LR}, train()'s default, not at the lr={LR} it was given: pass "
                "the `lr` argument to the optimizer, optim.SGD(model.parameters(), lr=lr)")
    if _close(losses, reference.losses(seed, BATCH, steps, LR, accumulate=True)):
        return ("these are the losses of gradients that pile up from step to step: call optimizer.zero_grad() "
                "every step, before backward()")
    if _close(losses, reference.losses(seed, BATCH, steps + 1, LR)[1:]):
        return ("each loss is the one after its step: record loss.item() of the loss you called backward() on, "
                "before the next forward")
    unused = _unused_batch(facts)
    if unused:
        return f"nothing train() computed read the {' or '.join(unused)} it was given: train on that batch, every step"
    return ("check the loop: one forward of the model on x, MSELoss against y, optimizer.zero_grad(), "
            "loss.backward(), optimizer.step(), and the loss recorded before its step; the reference is the lab's "
            "network, so a forward that differs from it (part1.forward_math) differs here too")


@rubric("part2.matches_sgd")
def test_matches_sgd(probe, grading):
    facts = probe("train")
    losses = _losses(facts)
    steps = min(max(len(losses), 1), STEPS)  # a wrong count of steps is losses_returned's finding
    expected = reference.losses(SEEDS["train"], BATCH, steps, LR)
    shown = ", ".join(f"{v:.5f}" for v in expected)
    if not _close(losses, expected):  # the diagnosis runs the grader's SGD twice more (a batch: once for all)
        fail(f"the grader called {CALL} on its own weights and batch; it returned the losses "
             f"{[round(v, 5) if isinstance(v, float) else v for v in losses]}, where SGD(lr={LR}) with MSELoss gives "
             f"[{shown}]: {_diagnosis(facts, losses, steps)} ({HINT})")
    got = _final_weights(grading)
    distance = reference.distance(got, reference.sgd(SEEDS["train"], BATCH, steps, LR)[1])
    if not math.isfinite(distance):  # (finite float32 weights are a finite distance from SGD's)
        fail("after train() the weights hold NaN or infinite values")
    step = reference.update_norm(SEEDS["train"], BATCH, steps, LR)
    expect(distance <= 0.05 * step,
           f"the losses match, but the final weights are {distance:.3g} from SGD's after {steps} steps, "
           f"{distance / step:.2g} times the size of one step's update ({step:.3g}): take every step, the last "
           "one included, with optimizer.step()")


@rubric("part2.target_on_last_gpu")
def test_target_on_last_gpu(probe):
    facts = probe("train")
    if facts.cpu_target_error:
        fail(f"train() must move the CPU target to the last GPU itself ({HINT}: y.to(device1)); "
             f"{facts.cpu_target_error}")
    wrong = [f"{role} on {facts.params[role]} has its gradient on {device}"
             for role, device in facts.grads.items() if device is not None and device != facts.params[role]]
    expect(not wrong, "; ".join(wrong))
    expect(any(facts.grads.values()), "train() made no gradient for any parameter: was backward() called?")
