"""Buggy and abusive submissions: each is the reference solution with one realistic mistake,
written down as the edit that makes it, beside the rubric items it must lose (all others pass)."""
import dataclasses
import pathlib

import yaml

from grader.selftest import FAULTS, TIMED, variant

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "model.py"
ALL = [item["id"] for item in yaml.safe_load((ROOT / "rubric.yaml").read_text())["items"]]
MODEL = [i for i in ALL if i != "questions.answers"]  # every item model.py earns
PART2 = [i for i in ALL if i.startswith("part2.")]
PART4 = [i for i in ALL if i.startswith("part4.")]
PART5 = [i for i in ALL if i.startswith("part5.")]
POINTS = {item["id"]: item["points"] for item in yaml.safe_load((ROOT / "rubric.yaml").read_text())["items"]}
FULL = sum(POINTS.values())  # the solution's score, bonus included
BONUS = [item["id"] for item in yaml.safe_load((ROOT / "rubric.yaml").read_text())["items"] if item.get("bonus")]
def line(text):
    """The solution's line (1-based) that starts with `text`: where an edit's line lands."""
    return next(n for n, source in enumerate(SOLUTION.read_text().splitlines(), 1) if source.startswith(text))


TRAIN_START, IMPORTS = line("    optimizer = optim.SGD"), line("import time")
FORWARD = ["part1.input_moved_to_cuda0", "part1.output_on_cuda1", "part1.forward_math", "part1.single_transfer"]

@dataclasses.dataclass(frozen=True)
class Bug:
    edits: tuple  # (old, new) pairs; each old text occurs in the solution exactly once
    loses: tuple  # the rubric items the submission must fail
    reason: str = ""  # a phrase every lost item's message must contain, where it matters
    allow: tuple = ()  # modules the rubric must allow for the abuse to get past the import check


BUGS = {
    # The selftest's faults, which it checks on every grading machine.
    **{name: Bug(fault.edits, fault.loses, fault.reason) for name, fault in FAULTS.items()},
    "no_input_move": Bug((("        x = x.to(device0)\n", ""),), ("part1.input_moved_to_cuda0",)),
    "no_zero_grad": Bug((("        optimizer.zero_grad()\n", ""),), ("part2.matches_sgd",), "gradients that pile up"),
    "fixed_lr": Bug((("lr=lr)", "lr=0.01)"),), ("part2.matches_sgd",), "lr=0.01, train()'s default"),
    "fixed_steps": Bug((("range(steps)", "range(5)"),), ("part2.losses_returned",)),
    "loss_tensors": Bug((("losses.append(loss.item())", "losses.append(loss)"),), ("part2.losses_returned",)),
    "loss_after_step": Bug((("losses.append(loss.item())", "losses.append(loss_fn(model(x), y).item())"),),
                           ("part2.matches_sgd",), "the one after its step"),
    "sync_after_clock": Bug(((TIMED, TIMED.replace("    torch.cuda.synchronize(device1)\n    return time.perf_counter() - start",
                                                   "    end = time.perf_counter()\n    torch.cuda.synchronize(device1)\n    return end - start")),),
                            ("part4.clock_after_sync",)),
    "sync_before_forward": Bug(((TIMED, "    torch.cuda.synchronize(device1)\n    start = time.perf_counter()\n    model(x)\n"
                                        "    return time.perf_counter() - start\n"),),
                               ("part4.clock_after_sync", "part4.sync_covers_output_gpu")),
    "milliseconds": Bug((("return time.perf_counter() - start", "return (time.perf_counter() - start) * 1000"),),
                        ("part4.seconds_plausible",)),
    "profile_constants": Bug((('    timing = {name: torch.cuda.Event', '    return {"stage0_ms": 1.0, "transfer_ms": 0.1, '
                                '"stage1_ms": 1.0, "wall_ms": 2.2, "idle_fraction": 1 - 2.0 / 4.4, "memory_bytes": '
                                '{str(d): torch.cuda.memory_allocated(d) for d in (device0, device1)}}\n'
                                '    timing = {name: torch.cuda.Event'),),
                              PART5[:2], "ran no forward pass"),
    "profile_no_sync": Bug((("        timing[\"stage1_end\"].record()\n    torch.cuda.synchronize(device0)\n"
                             "    torch.cuda.synchronize(device1)\n", "        timing[\"stage1_end\"].record()\n"),),
                           PART5, "device not ready"),
    "pipeline_synced": Bug((("            outputs.append(self.relu2(self.layer2(moved)))  # queued on cuda:1 ...\n",
                             "            outputs.append(self.relu2(self.layer2(moved)))\n"
                             "            torch.cuda.synchronize(device1)\n"),),
                           ("part6.pipelined",), "barely compute at once"),  # forward waits for cuda:1
    "pipeline_reordered": Bug((("return torch.cat(outputs)", "return torch.cat(outputs[::-1])"),),
                              ("part6.pipelined",), "differs from relu(W2 relu(W1 x + b1) + b2)"),
    "host_round_trip": Bug((("x = x.to(device1)", "x = x.cpu().to(device1)"),), ("part1.single_transfer",)),
    # The reference training is the lab's network in the grader's own math: a forward bug shows there too.
    "no_relu2": Bug((("return self.relu2(self.layer2(x))", "return self.layer2(x)"),),
                    ("part1.forward_math", "part2.matches_sgd")),
    "verbose_always": Bug(tuple((f"        if verbose:\n            print(\"{w} move:\", x.device)",
                                 f"        print(\"{w} move:\", x.device)") for w in ("Before", "After")),
                          ("part3.prints_devices",)),
    "verbose_wrong_words": Bug((('"Before move:"', '"before:"'),), ("part3.prints_devices",)),
    "no_verbose_param": Bug((("def forward(self, x, verbose=False):\n        x = x.to(device0)",
                              "def forward(self, x):\n        x = x.to(device0)"),
                             ('        if verbose:\n            print("Before move:", x.device)\n', ""),
                             ('        if verbose:\n            print("After move:", x.device)\n', "")),
                            ("part3.prints_devices",)),
    # Parts 5 and 6 split the model across the GPUs as the lab asks, which this model is not.
    "layer2_on_cuda0": Bug((("nn.Linear(2000, 1000).to(device1)", "nn.Linear(2000, 1000).to(device0)"),
                            ("nn.ReLU().to(device1)", "nn.ReLU().to(device0)"),
                            ("x = x.to(device1)", "x = x.to(device0)"), ("y = y.to(device1)", "y = y.to(device0)")),
                           ("part1.layer2_on_cuda1", "part1.output_on_cuda1", "part1.single_transfer",
                            "part3.prints_devices", *PART5, "part6.pipelined")),
    # A forward that cannot run fails every check that needs its output; what it did first still counts.
    "no_transfer": Bug((("        x = x.to(device1)\n", ""),),
                       (*FORWARD[1:], *PART2, "part3.prints_devices", *PART4), "cuda:0 and cuda:1!"),
    "no_train": Bug((("def train(", "def trian("),), PART2, "defines no `train`"),
    "endless_train": Bug((("    return losses\n", "    while True:\n        pass\n"),), PART2, "did not finish within"),
    "syntax_error": Bug((("lr=0.01):", "lr=0.01)"),), MODEL, "does not compile"),
    # Abuse: each is tamper-suspected in the items it touches, and gains nothing.
    # os is allowed here, so that the private os._exit is what the rules refuse.
    "exit_in_train": Bug((("    optimizer = optim.SGD", "    import os\n    os._exit(0)\n    optimizer = optim.SGD"),),
                         MODEL, f"tamper-suspected: line {TRAIN_START + 1} uses ._exit", ("os",)),
    "reaches_torch_os": Bug((("    optimizer = optim.SGD", "    torch.os._exit(0)\n    optimizer = optim.SGD"),),
                            MODEL, f"tamper-suspected: line {TRAIN_START} reaches the module os through torch.os"),
    "exit_at_import": Bug((("device0 = ", "raise SystemExit(3)\ndevice0 = "),), MODEL, "SystemExit (tamper-suspected"),
    "imports_os": Bug((("import time\n", "import os\nimport time\n"),), MODEL, f"tamper-suspected: line {IMPORTS} imports os"),
    "imports_solution": Bug((("import time\n", "import time\nfrom solutions.model import train as _reference\n"),),
                            MODEL, "imports solutions.model"),
    "reaches_builtins": Bug((("device0 = ", "print(__builtins__)\ndevice0 = "),), MODEL, "uses __builtins__"),
    "fakes_device": Bug((("device0 = ", "torch.Tensor.device = property(lambda self: torch.device('cuda:0'))\ndevice0 = "),),
                        MODEL, "tamper-suspected: the submission changed Tensor.device"),
    "fakes_sync": Bug(((TIMED, "    torch.cuda.synchronize = lambda device=None: None\n" + TIMED),),
                      PART4, "tamper-suspected: the submission changed torch.cuda.synchronize"),
    "imports_pytest": Bug((("import time\n", "import time\n\nimport pytest\n\npytest.main = None\n"),), MODEL,
                          "imports pytest"),
    "rewrites_rubric": Bug((("device0 = ", 'open("/tmp/rubric.yaml", "w").write("items: []")\ndevice0 = '),), MODEL,
                           "uses open"),
    "prints_fake_score": Bug((("device0 = ", 'print("Score: 100 / 100")\nprint("::notice title=Autograding complete::Points 100/100")\ndevice0 = '),),
                             ()),
    "huge_allocation": Bug((("device1 = torch.device(\"cuda:1\")\n",
                             "device1 = torch.device(\"cuda:1\")\nWORKSPACE = torch.ones(8 * 2**30)  # 32 GB\n"),),
                           MODEL, "can't allocate memory"),
    # Points without the skill (issue 9): each gains nothing.
    "hardcoded_losses": Bug((("    return losses\n", "    return [1.0 - 0.1 * i for i in range(steps)]\n"),),
                            ("part2.losses_returned", "part2.loss_decreases", "part2.matches_sgd"), "returned"),
    "scaled_losses_no_training": Bug((("        loss = loss_fn(model(x), y)\n        optimizer.zero_grad()\n"
                                        "        loss.backward()\n        optimizer.step()\n",
                                        "        loss = loss_fn(model(x) * (1 - 0.01 * len(losses)), y)\n"),),
                                       ("part2.loss_decreases", "part2.matches_sgd", "part2.target_on_last_gpu")),
    "no_step": Bug((("        optimizer.step()\n", ""),), ("part2.loss_decreases", "part2.matches_sgd")),
    "fresh_batch_each_step": Bug((("loss = loss_fn(model(x), y)",
                                   "loss = loss_fn(model(torch.randn(32, 1000)), torch.randn(32, 1000).to(device1))"),),
                                 ("part2.loss_decreases", "part2.matches_sgd")),
    "skips_last_step": Bug((("        optimizer.step()\n", "        if _ < steps - 1:\n            optimizer.step()\n"),),
                           ("part2.matches_sgd",), "one step's update"),
    "nan_weights": Bug((("    return losses\n", "    with torch.no_grad():\n        model.layer1.weight.fill_(float('nan'))\n"
                                              "    return losses\n"),), ("part2.loss_decreases", "part2.matches_sgd")),
    "profile_host_clock": Bug((('        "stage0_ms": timing["stage0_start"].elapsed_time(timing["stage0_end"]),',
                                '        "stage0_ms": wall_ms / 2,'),), PART5[:2], "stage0_ms"),
    "profile_events_on_cuda0": Bug((("    with torch.cuda.device(device1):\n        timing[\"transfer_start\"]",
                                     "    with torch.cuda.device(device0):\n        timing[\"transfer_start\"]"),),
                                   PART5[:2], "transfer_ms, stage1_ms"),
    "profile_made_up": Bug((('    timing = {name: torch.cuda.Event', '    b = x.shape[0] / 32\n    return {"stage0_ms": b, '
                             '"transfer_ms": 0.1 * b, "stage1_ms": b, "wall_ms": 2.2 * b, "idle_fraction": 1 - 2 / 4.4, '
                             '"memory_bytes": {str(d): torch.cuda.memory_allocated(d) for d in (device0, device1)}}\n'
                             '    timing = {name: torch.cuda.Event'),),
                           PART5[:2], "ran no forward pass"),
    "event_before_forward": Bug(((TIMED, "    done = torch.cuda.Event()\n    with torch.cuda.device(device1):\n"
                                         "        done.record()\n    start = time.perf_counter()\n    model(x)\n"
                                         "    done.synchronize()\n    return time.perf_counter() - start\n"),),
                                PART4[:2]),
    "prints_without_move": Bug((('        x = x.to(device1)\n        if verbose:\n            print("After move:", x.device)\n',
                                 '        if verbose:\n            print("After move: cuda:1")\n        x = x.to(device1)\n'),),
                               ("part3.prints_devices",)),
    "pipeline_not_pipelined": Bug((("        chunks = iter(x.to(device0).split(self.split_size))",
                                    "        return super().forward(x)\n        chunks = iter(x.to(device0).split(self.split_size))"),),
                                  ("part6.pipelined",), "layer1 ran 1 time"),
    "pipeline_dummy_work": Bug((("            outputs.append(self.relu2(self.layer2(moved)))  # queued on cuda:1 ...\n",
                                 "            outputs.append(self.relu2(self.layer2(moved)))\n"
                                 "            moved.t() @ moved  # busy work on cuda:1, to look overlapped\n"),),
                               ("part6.pipelined",), "times the work"),
    "output_subclass": Bug((("class SimpleMPModel(nn.Module):",
                             "class OnCuda1(torch.Tensor):\n    @property\n    def device(self):\n"
                             "        return device1\n\n\nclass SimpleMPModel(nn.Module):"),
                            ("return self.relu2(self.layer2(x))", "return self.relu2(self.layer2(x)).as_subclass(OnCuda1)")),
                           ("part1.output_on_cuda1", "part1.forward_math"), "not a plain torch.Tensor"),
    "parameter_subclass": Bug((("class SimpleMPModel(nn.Module):",
                                "class Placed(nn.Parameter):\n    pass\n\n\nclass SimpleMPModel(nn.Module):"),
                               ("        self.relu1 = nn.ReLU().to(device0)\n",
                                "        self.relu1 = nn.ReLU().to(device0)\n        self.layer1.weight = "
                                "Placed(self.layer1.weight.detach())\n")),
                              tuple(i for i in MODEL if i != "part1.layer2_on_cuda1"), "not a plain torch Parameter"),
    "cpu_as_wait": Bug(((TIMED, TIMED.replace("    model(x)\n    torch.cuda.synchronize(device1)\n",
                                              "    model(x).cpu()\n")),), ()),
    "layer2_alone_on_cuda0": Bug((("nn.Linear(2000, 1000).to(device1)", "nn.Linear(2000, 1000).to(device0)"),),
                                 ("part1.layer2_on_cuda1", "part1.output_on_cuda1", "part1.forward_math",
                                  "part1.single_transfer", *PART2, "part3.prints_devices", *PART4, *PART5,
                                  "part6.pipelined")),
    # Reaching past the contract (issue 8): refused before anything runs.
    "from_torch_import_os": Bug((("import time\n", "import time\nfrom torch import os\n"),), MODEL,
                                "reaches the module os through torch.os"),
    "getattr_torch_os": Bug((("device0 = ", "getattr(torch, 'o' + 's')\ndevice0 = "),), MODEL, "uses getattr"),
    "collections_sys": Bug((("import time\n", "import time\nimport collections\ncollections._sys.exit(0)\n"),), MODEL,
                           f"tamper-suspected: line {IMPORTS + 2} reaches the module sys"),
    "print_self": Bug((("device0 = ", "builtins_module = print.__self__\ndevice0 = "),), MODEL, "uses .__self__"),
    "traceback_frames": Bug((("    optimizer = optim.SGD", "    try:\n        1 / 0\n    except ZeroDivisionError as e:\n"
                                                       "        e.__traceback__.tb_frame.f_back.f_globals\n"
                                                       "    optimizer = optim.SGD"),), MODEL, "tamper-suspected"),
    "torch_load": Bug((("device0 = ", "torch.load('/etc/passwd', weights_only=False)\ndevice0 = "),), MODEL,
                      "uses .load"),
    "cpp_extension_subprocess": Bug((("import time\n", "import time\nfrom torch.utils.cpp_extension import subprocess\n"),),
                                    MODEL, "tamper-suspected"),
    "fx_exec": Bug((("device0 = ", "torch.fx.graph_module._exec_with_source('1', {})\ndevice0 = "),), MODEL,
                   "tamper-suspected"),
    "typing_operator": Bug((("import time\n", "import time\nimport typing\nGET = typing.operator.attrgetter\n"),),
                           MODEL, "the module operator"),
    "torch_hub_json": Bug((("import time\n", "import time\nfrom torch.hub import json\n"),), MODEL, "tamper-suspected"),
    "subclasses_walk": Bug((("device0 = ", "classes = type(0).mro()[-1].__subclasses__()\ndevice0 = "),), MODEL,
                           "uses .__subclasses__"),
    "parser_bomb": Bug((("device0 = ", "BOMB = " + "-" * 100000 + "1\ndevice0 = "),), MODEL, "cannot be parsed"),
    "renamed_profile": Bug((("def profile_stages(model, x):", "def profile_stage(model, x):"),
                            ('print("Stages:", profile_stages(', 'print("Stages:", profile_stage(')), PART5,
                           "defines no `profile_stages` (did you mean to name `profile_stage` `profile_stages`?)"),
    "imports_numpy": Bug((("import time\n", "import time\nimport numpy\n"),), MODEL,
                         "imports numpy, which this lab does not allow; remove it"),
}


PROFILED = ('        timing["transfer_start"].record()\n        h = h.to(device1)\n        timing["transfer_end"].record()\n')
TRAINED = "        losses.append(loss.item())\n    return losses\n"
BUGS |= {
    # Points without the work (issue 20): each waits for, moves, overlaps or measures nothing.
    "fresh_stream_sync": Bug(((TIMED, TIMED.replace("torch.cuda.synchronize(device1)",
                                                    "torch.cuda.Stream(device1).synchronize()")),), PART4[:2]),
    "side_stream_event": Bug(((TIMED, TIMED.replace("    torch.cuda.synchronize(device1)\n",
                                                    "    done = torch.cuda.Stream(device1).record_event()\n"
                                                    "    done.synchronize()\n")),), PART4[:2]),
    "token_move": Bug((("nn.Linear(2000, 1000).to(device1)", "nn.Linear(2000, 1000).to(device0)"),
                       ("nn.ReLU().to(device1)", "nn.ReLU().to(device0)"),
                       ("x = x.to(device1)", "x[:1, :1].to(device1)"), ("y = y.to(device1)", "y = y.to(device0)")),
                      ("part1.layer2_on_cuda1", "part1.output_on_cuda1", "part1.single_transfer",
                       "part3.prints_devices", *PART5, "part6.pipelined")),
    "transfer_token": Bug(((PROFILED, PROFILED.replace("h = h.to(device1)", "h[:1, :1].to(device1)")
                            + "        h = h.to(device1)\n"),), PART5[:2], "transfer_ms"),
    "pipeline_layer1_only": Bug((("        chunks = iter(x.to(device0).split(self.split_size))",
                                  "        hidden = [self.relu1(self.layer1(c)).to(device1) for c in "
                                  "x.to(device0).split(self.split_size)]\n"
                                  "        return self.relu2(self.layer2(torch.cat(hidden)))\n"
                                  "        chunks = iter(x.to(device0).split(self.split_size))"),),
                                ("part6.pipelined",), "layer2 1 time(s)"),
    "memory_by_hand": Bug((("{str(d): torch.cuda.memory_allocated(d) for d in (device0, device1)}",
                            '{"cuda:0": 8008000, "cuda:1": 8004000}'),), ("part5.memory_split",),
                          "no torch.cuda.memory_allocated(device) call answered"),
    "event_times_written": Bug((("    wall_ms = (time.perf_counter() - start) * 1000\n",
                                 "    wall_ms = (time.perf_counter() - start) * 1000\n"
                                 "    for stage in (\"stage0\", \"transfer\", \"stage1\"):\n"
                                 "        begin, end = timing[stage + \"_start\"], timing[stage + \"_end\"]\n"
                                 "        begin.time, end.time = 0.0, 1e-4\n"),),
                               ()),  # the runtime keeps each event's time itself: what is written there is ignored
    # Two grades for one submission (issue 20): the loss of a random target falls, or not, by luck.
    "random_target": Bug((("loss = loss_fn(model(x), y)", "loss = loss_fn(model(x), torch.randn(32, 1000).to(device1))"),),
                         ("part2.loss_decreases", "part2.matches_sgd")),
    # Losses made up, each read through a tensor so that it looks read (a red-team finding).
    "losses_made_up": Bug((("    return losses\n", "    return [torch.tensor(2.0 - 0.1 * i).item() for i in range(steps)]\n"),),
                          ("part2.losses_returned", "part2.loss_decreases", "part2.matches_sgd")),
    # Honest styles (issue 20): each is correct, and loses nothing.
    "warmup_synced": Bug(((TIMED, "    model(x)\n    torch.cuda.synchronize(device0)\n    torch.cuda.synchronize(device1)\n"
                                  + TIMED),), ()),
    "warmup_unsynced": Bug(((TIMED, "    model(x)\n" + TIMED),), ()),
    "mean_of_passes": Bug(((TIMED, "    start = time.perf_counter()\n    for _ in range(5):\n        model(x)\n"
                                   "        torch.cuda.synchronize(device1)\n    return (time.perf_counter() - start) / 5\n"),),
                          ()),
    "mean_of_laps": Bug(((TIMED, "    laps = []\n    for _ in range(5):\n        start = time.perf_counter_ns()\n"
                                 "        model(x)\n        torch.cuda.synchronize(device1)\n"
                                 "        laps.append(time.perf_counter_ns() - start)\n    return sum(laps) / 5 / 1e9\n"),), ()),
    "profile_warmup": Bug((("    x = x.to(device0)\n    torch.cuda.synchronize(device0)\n",
                            "    x = x.to(device0)\n    model(x)\n    torch.cuda.synchronize(device0)\n"),), ()),
    "time_ns": Bug(((TIMED, TIMED.replace("time.perf_counter()", "time.time_ns()")
                     .replace("return time.time_ns() - start", "return (time.time_ns() - start) / 1e9")),), ()),
    "losses_stacked": Bug(((TRAINED, "        losses.append(loss.detach())\n    return torch.stack(losses).tolist()\n"),), ()),
    "losses_cpu_tolist": Bug(((TRAINED, "        losses.append(loss.detach())\n"
                                        "    return torch.stack(losses).cpu().tolist()\n"),), ()),
    "grads_cleared_after_step": Bug((("        optimizer.zero_grad()\n        loss.backward()\n        optimizer.step()\n",
                                      "        loss.backward()\n        optimizer.step()\n"
                                      "        optimizer.zero_grad(set_to_none=True)\n"),), ()),
    "float_loss": Bug((("losses.append(loss.item())", "losses.append(float(loss))"),), ()),
}


def write(name, folder):
    """The submission `name` as a file in `folder`."""
    path = pathlib.Path(folder) / f"{name}.py"
    path.write_text(variant(BUGS[name].edits, SOLUTION))
    return path
