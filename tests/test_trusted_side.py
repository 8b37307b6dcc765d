"""The trusted side imports no torch: its references are numpy's, the GPU count and the static rules
come from the sandbox, which imports torch once (issue: a student's run costs one torch import)."""
import subprocess
import sys
import tracemalloc

import numpy
import pytest
import torch
from corpus import ROOT
from helpers import grade, submitted

from grader import inputs, reference
from grader.contract import BATCH, DEFAULT_STEPS, LR, PIPELINE_BATCH, SEEDS, STEPS

GRADES_WITHOUT_TORCH = """
import sys, pytest
code = pytest.main(["grader/", "-q", "-p", "no:cacheprovider", "--submission", "solutions/model.py",
                    "--answers", "solutions/answers.yaml"])
print("torch imported:", "torch" in sys.modules, "exit:", int(code))
"""


def test_a_whole_grading_run_imports_no_torch():
    run = subprocess.run([sys.executable, "-c", GRADES_WITHOUT_TORCH], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert "Score: 110 / 110" in run.stdout, run.stdout + run.stderr
    assert run.stdout.strip().endswith("torch imported: False exit: 0"), run.stdout[-400:]


def _autograd(seed, size, loss_of, steps=1, lr=0.0):
    """torch's own autograd of the lab's network in float64 on the same draws: (losses, output, grads, weights)."""
    x, y = (torch.tensor(a, dtype=torch.float64) for a in inputs.batch(seed, size))
    w = {role: torch.from_numpy(a).double().requires_grad_() for role, a in inputs.weights(seed).items()}
    losses = []
    for _ in range(steps):
        out = torch.relu(torch.relu(x @ w["w1"].T + w["b1"]) @ w["w2"].T + w["b2"])
        loss = loss_of(out, y)
        grads = dict(zip(w, torch.autograd.grad(loss, list(w.values()))))
        losses.append(loss.item())
        with torch.no_grad():
            for role, grad in grads.items():
                w[role] -= lr * grad
    final = {role: value.detach().numpy() for role, value in w.items()}
    return losses, out.detach().numpy(), {role: grad.numpy() for role, grad in grads.items()}, final


def test_the_references_are_autograds_own_math():
    """The hand-written backward of grader/reference.py against torch's autograd, in float64."""
    losses, _, _, final = _autograd(SEEDS["train"], BATCH, lambda o, y: ((o - y) ** 2).mean(), STEPS, LR)
    expected, weights, _ = reference.sgd(SEEDS["train"], BATCH, STEPS, LR)
    assert numpy.allclose(losses, expected, rtol=1e-12, atol=0)
    assert all(numpy.allclose(weights[r], final[r], rtol=1e-10, atol=1e-14) for r in final)
    _, out, grads, _ = _autograd(SEEDS["pipeline"], PIPELINE_BATCH, lambda o, y: ((o - y) ** 2).mean())
    expected_out, expected_grads = reference.gradients(SEEDS["pipeline"], PIPELINE_BATCH)
    assert numpy.allclose(out, expected_out, rtol=1e-12, atol=1e-15)
    assert all(numpy.allclose(expected_grads[r], grads[r], rtol=1e-9, atol=1e-15) for r in grads)


@pytest.mark.parametrize("bad", [numpy.nan, numpy.inf, -numpy.inf])
def test_a_nan_or_infinity_in_any_block_is_an_infinite_difference(bad):
    expected = numpy.zeros(3 * reference.BLOCK)
    for at in (0, reference.BLOCK + 5, expected.size - 1):  # the first block, a middle one, the last
        got = numpy.zeros(expected.size, dtype=numpy.float32)
        got[7] = 0.5
        assert reference.largest_difference(got, expected) == 0.5
        got[at] = bad
        assert reference.largest_difference(got, expected) == float("inf")
        assert reference.largest_difference(numpy.zeros_like(got), got.astype(numpy.float64)) == float("inf")


def test_the_rules_refuse_before_any_of_the_submission_runs(tmp_path):
    """The sandbox's session applies the rules before it loads the submission: nothing it does at
    import (here, a print) happens, and every item gives the rules' reason."""
    model = tmp_path / "model.py"
    model.write_text((ROOT / "solutions" / "model.py").read_text().replace(
        "import time\n", "import time\nprint('module-level code ran')\nimport os\n", 1))
    run, graded = grade(tmp_path, *submitted(model))
    assert "module-level code ran" not in run.stdout + run.stderr
    assert not graded["warnings"]
    lost = [c for c in graded["checks"] if c["id"] != "questions.answers"]
    assert lost and all("imports os" in c["message"] and c["points"] == 0 for c in lost), lost


def test_real_mode_without_two_gpus_is_one_line():
    """The sandbox counts the GPUs; asking for real ones it does not see is a usage error."""
    if torch.cuda.device_count() >= 2:
        pytest.skip("two GPUs are visible")
    run = subprocess.run([sys.executable, "-m", "pytest", "grader/", "-p", "no:cacheprovider", "--grader-mode", "real"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "--grader-mode real needs two CUDA GPUs; 0 visible" in run.stderr, run.stderr
    assert "Traceback" not in run.stdout + run.stderr


def test_what_the_checks_ask_of_a_right_train_was_computed_while_the_sandbox_started(monkeypatch):
    """reference.warm() runs beside the zygote's import; a right train() then costs the checks no
    backward pass of their own, however they ask (the losses of one step, of all, the weights)."""
    reference.warm()
    passes = []
    backward = reference.backward
    monkeypatch.setattr(reference, "backward", lambda *args: passes.append(1) or backward(*args))
    assert len(reference.losses(SEEDS["train"], BATCH, 1, LR)) == 1
    assert len(reference.losses(SEEDS["train"], BATCH, STEPS, LR)) == STEPS
    assert len(reference.sgd(SEEDS["train"], BATCH, STEPS, LR)[0]) == STEPS
    assert passes == []
    reference.losses(SEEDS["train"], BATCH, 3, LR, accumulate=True)  # a diagnosis: computed when asked
    assert len(passes) == STEPS


def test_the_loss_of_returned_weights_never_copies_a_layer_whole():
    """train()'s final weights arrive as float32: the grader's loss of them widens them a block at
    a time (a float64 copy of w1 is 16 MB, every page of it faulted in by a batch's fresh worker),
    and gives what the widened copy gives."""
    weights = inputs.weights(SEEDS["train"])
    widened = reference.loss(SEEDS["train"], BATCH, {role: w.astype(numpy.float64) for role, w in weights.items()})
    tracemalloc.start()
    try:
        value = reference.loss(SEEDS["train"], BATCH, weights)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20, peak
    assert value == widened


def test_a_batch_computes_once_what_a_train_that_ignores_steps_is_compared_with(monkeypatch):
    """train()'s default step count is the commonest wrong one: a batch's workers, forked after
    warm(diagnoses=True), compare it with final weights computed once for the class."""
    reference._sgd.cache_clear()
    reference.warm(diagnoses=True)
    passes = []
    backward = reference.backward
    monkeypatch.setattr(reference, "backward", lambda *args: passes.append(1) or backward(*args))
    assert len(reference.sgd(SEEDS["train"], BATCH, DEFAULT_STEPS, LR)[0]) == DEFAULT_STEPS
    assert passes == []


def test_an_output_the_submission_rewrites_after_returning_it_is_judged_as_returned(tmp_path):
    """A probe keeps a returned tensor as a copy of its own at once: the forward that returns zeros
    and rewrites them with the right values in its next call (verbose=True) is judged on the zeros."""
    model = tmp_path / "model.py"
    model.write_text((ROOT / "solutions" / "model.py").read_text().replace(
        "        return self.relu2(self.layer2(x))\n",
        "        out = self.relu2(self.layer2(x))\n"
        "        if verbose:\n"
        "            self.returned.copy_(out.cpu())  # the last call's output, rewritten now\n"
        "            return out\n"
        "        self.returned = (out * 0).cpu()\n"
        "        return self.returned\n", 1))
    _, graded = grade(tmp_path, *submitted(model))
    forward_math = next(c for c in graded["checks"] if c["id"] == "part1.forward_math")
    assert forward_math["status"] != "passed", forward_math


def test_a_solution_that_sets_torchs_default_device_gets_full_marks(tmp_path):
    """torch.set_default_device(device1) is honest code: what the probes make for themselves (the
    host copies of returned tensors) is made on the CPU all the same."""
    model = tmp_path / "model.py"
    source = (ROOT / "solutions" / "model.py").read_text()
    assert "device1 = torch.device(\"cuda:1\")\n" in source
    model.write_text(source.replace("device1 = torch.device(\"cuda:1\")\n",
                                    "device1 = torch.device(\"cuda:1\")\ntorch.set_default_device(device1)\n", 1))
    _, graded = grade(tmp_path, *submitted(model))
    assert not [c for c in graded["checks"] if c["status"] != "passed"], graded["checks"]


def test_a_sparse_output_is_named_not_an_internal_error(tmp_path):
    """A forward that returns a sparse tensor loses the output checks for that reason, plainly."""
    model = tmp_path / "model.py"
    model.write_text((ROOT / "solutions" / "model.py").read_text().replace(
        "        return self.relu2(self.layer2(x))\n", "        return self.relu2(self.layer2(x)).to_sparse()\n", 1))
    _, graded = grade(tmp_path, *submitted(model))
    checks = {c["id"]: c for c in graded["checks"]}
    assert "layout sparse_coo" in checks["part1.output_on_cuda1"]["message"]
    assert checks["part1.single_transfer"]["status"] == "passed"
    assert not [c for c in graded["checks"] if "internal grader error" in c["message"]]
