"""The sandbox, below the static rules (these submissions import os, which the rules refuse):
what student code can do to the grader's process, to the next submission and to the machine,
and what it reads there. Each test is one promise of the README's threat model."""
import time
import uuid
import zlib

import pytest
import torch
from corpus import ROOT

from grader.contract import TAMPER
from grader.procs import descendants, of_uid
from grader.sandbox import isolation as isolations
from grader.sandbox import runner as runners

ISOLATION = isolations.detect()
LIMITS = runners.Limits(seconds=5, memory_bytes=2 * 2**30)
SOLUTION = (ROOT / "solutions" / "model.py").read_text()
KEY = ROOT / "solutions" / "answers.yaml"


def with_train(body):
    """The solution, whose train() first runs `body` (indented by the caller's newlines)."""
    return "import os\n" + SOLUTION.replace("def train(model, x, y, steps=5, lr=0.01):\n",
                                            "def train(model, x, y, steps=5, lr=0.01):\n" + body)


@pytest.fixture(scope="module")
def runner():
    zygote = runners.Runner(ISOLATION, ["torch", "time", "math", "os"], hidden=[KEY], limits=LIMITS, cores=2).start()
    yield zygote
    zygote.close()


def train_outcome(runner, source, limits=LIMITS):
    session = runner.grade(source, "model.py", "virtual", ["train"], limits, rules=False)  # past the rules
    outcome = session.outcome("train")
    session.finish()
    runner.clean()
    return outcome, session


def test_a_crash_is_a_crash_not_tampering(runner):
    outcome, _ = train_outcome(runner, with_train("    os.kill(os.getpid(), 9)\n"))
    assert "crashed during train()" in outcome.failure and "out of memory?" in outcome.failure
    assert TAMPER not in outcome.failure


@pytest.mark.parametrize("status, words", [(3, "(exit status 3)"), (0, "before it could report")])
def test_exiting_the_process_is_tampering(runner, status, words):
    outcome, _ = train_outcome(runner, with_train(f"    os._exit({status})\n"))
    assert outcome.failure.startswith(TAMPER) and words in outcome.failure


def test_an_endless_loop_costs_its_probe_and_its_time_only(runner):
    started = time.monotonic()
    outcome, _ = train_outcome(runner, with_train("    while True:\n        pass\n"))
    assert "did not finish within 5 s" in outcome.failure
    assert time.monotonic() - started < 5 + runners.GRACE + 5


@pytest.mark.parametrize("junk", ["b'x' * (1 << 20)", "b'MPL1' + (1 << 40).to_bytes(8, 'little')"])
def test_junk_on_the_result_pipe_is_an_unreadable_result(runner, junk):
    flood = f"    for fd in range(3, 64):\n        try:\n            os.write(fd, {junk})\n        except OSError:\n" \
            "            pass\n    os._exit(0)\n"
    outcome, _ = train_outcome(runner, with_train(flood))
    assert "unreadable result" in outcome.failure or "before it could report" in outcome.failure


def test_printing_without_end_is_capped(runner):
    outcome, session = train_outcome(runner, "for _ in range(100):\n    print('x' * (1 << 20))\n" + with_train(""))
    assert outcome.facts is not None  # graded as usual
    assert len(session.output) == runners.OUTPUT_CAP and session.dropped > 50 * 2**20


def test_no_process_outlives_its_submission(runner):
    daemon = ("    if os.fork() == 0:\n        os.setsid()\n        if os.fork() == 0:\n            time.sleep(600)\n"
              "        os._exit(0)\n")
    outcome, _ = train_outcome(runner, with_train(daemon))
    assert outcome.facts is not None
    zygote = _zygote_pid(runner)
    assert descendants(zygote) == []
    if ISOLATION.root:
        assert of_uid(runner.uid) == []


FRESH = pytest.mark.skipif(ISOLATION.kind == "none", reason="without isolation no namespace is made per student")


@FRESH
@pytest.mark.parametrize("folder", ["/dev/shm", "/tmp"])
def test_files_left_in_shared_folders_do_not_reach_the_next_submission(runner, folder):
    train_outcome(runner, with_train(f"    os.close(os.open('{folder}/left', os.O_CREAT | os.O_WRONLY))\n"))
    outcome, _ = train_outcome(runner, with_train(f"    raise RuntimeError(str(os.listdir('{folder}')))\n"))
    assert "RuntimeError: []" in outcome.failure


SHM = ("    import ctypes\n    libc = ctypes.CDLL(None, use_errno=True)\n"
       "    segment = libc.shmget(0x6d706c38, 4096, {flags})\n")


@FRESH
def test_a_system_v_segment_does_not_reach_the_next_submission(runner):
    """A segment outlives its process until its IPC namespace ends: each student has its own."""
    made, _ = train_outcome(runner, with_train(SHM.format(flags="0o1666") +  # IPC_CREAT | 0o666
                                               "    raise RuntimeError(f'made {segment}')\n"))
    assert "RuntimeError: made " in made.failure and "made -1" not in made.failure, made.failure
    found, _ = train_outcome(runner, with_train(SHM.format(flags="0") + "    raise RuntimeError(f'found {segment}')\n"))
    assert "RuntimeError: found -1" in found.failure, found.failure


MEMORY_SCAN = """    import ctypes, zlib
    found = 0
    with open('/proc/self/maps') as maps:
        for line in maps:
            fields = line.split()
            if not fields[1].startswith('r') or fields[-1] in ('[vvar]', '[vvar_vclock]', '[vsyscall]'):
                continue
            start, end = (int(x, 16) for x in fields[0].split('-'))
            data = ctypes.string_at(start, end - start)
            at = data.find(HEAD)
            while at >= 0:
                found += zlib.crc32(data[at + len(HEAD):at + len(HEAD) + 16]) == TAIL_CRC
                at = data.find(HEAD, at + 1)
    raise RuntimeError(f'found {found}')
"""


def test_the_previous_submissions_text_is_not_in_the_next_ones_memory(runner):
    """The next student's process holds nothing the zygote read for the last one: the classmate's
    text (here a token split in two, so that the scan itself never holds it whole) is nowhere."""
    head, tail = b"classmate-token-", b"0123456789abcdef"
    padding = "# " + "-" * 98 + "\n"  # a longer text than the next one's, so that its memory is not reused
    train_outcome(runner, f"ANSWER = {(head + tail).decode()!r}\n" + padding * 600 + with_train(""))
    scan = f"HEAD = {head!r}\nTAIL_CRC = {zlib.crc32(tail)}\n" + with_train(MEMORY_SCAN)
    outcome, _ = train_outcome(runner, scan, runners.Limits(seconds=20, memory_bytes=2 * 2**30))
    assert "RuntimeError: found 0" in outcome.failure, outcome.failure


@FRESH
def test_student_code_holds_no_capability(runner):
    read = "    raise RuntimeError(open('/proc/self/status').read().split('CapEff:')[1].split()[0])\n"
    outcome, _ = train_outcome(runner, with_train(read))
    assert "RuntimeError: 0000000000000000" in outcome.failure, outcome.failure


@pytest.mark.skipif(ISOLATION.kind != "bwrap", reason="without namespaces the key is closed by its permissions")
def test_the_answer_key_and_the_solutions_are_not_there(runner):
    for path in (KEY, ROOT / "solutions" / "model.py", ROOT / "tests" / "corpus.py"):
        outcome, _ = train_outcome(runner, with_train(f"    os.open({str(path)!r}, os.O_RDONLY)\n"))
        assert "FileNotFoundError" in outcome.failure, outcome.failure  # not there at all


@pytest.mark.skipif(not ISOLATION.root, reason="a uid of its own needs root")
def test_student_code_runs_as_the_slots_own_uid(runner):
    outcome, _ = train_outcome(runner, with_train("    raise RuntimeError(f'uid {os.getuid()}')\n"))
    assert f"RuntimeError: uid {runner.uid}" in outcome.failure


def test_an_outcome_read_after_the_deadline_still_counts(runner):
    session = runner.grade(SOLUTION, "model.py", "virtual", ["construct"], LIMITS)
    time.sleep(LIMITS.seconds + runners.GRACE + 1)  # the child finished long ago; its reader comes late
    assert session.outcome("construct").facts.layers["w1"].device == "cuda:0"
    runner.clean()


def _zygote_pid(runner):
    """The zygote's pid as this machine sees it (under bwrap it is a grandchild of ours)."""
    candidates = [runner.process.pid, *descendants(runner.process.pid)]
    commands = {p: open(f"/proc/{p}/cmdline", "rb").read().split(b"\0") for p in candidates}
    return next(p for p, argv in commands.items() if b"grader.runner" in argv and b"bwrap" not in argv[0])


@pytest.mark.skipif(not ISOLATION.root, reason="a uid of its own needs root")
def test_two_grading_runs_never_share_a_uid(runner):
    other = runners.Runner(ISOLATION, [])
    try:
        assert other.uid is not None and other.uid != runner.uid
    finally:
        other.close()


@pytest.mark.skipif(ISOLATION.kind == "none", reason="without isolation the process limit would count ours")
def test_a_fork_bomb_meets_the_process_limit(runner):
    bomb = ("    children = 0\n    try:\n        while children < 200:\n            if os.fork() == 0:\n"
            "                time.sleep(60)\n                os._exit(0)\n            children += 1\n"
            "    except OSError:\n        raise RuntimeError(f'stopped after {children}')\n")
    outcome, _ = train_outcome(runner, with_train(bomb))
    assert outcome.failure is not None and "stopped after" in outcome.failure, "200 processes were allowed"
    stopped = int(outcome.failure.split("stopped after ")[1].split(" ")[0].rstrip(")"))
    assert stopped < LIMITS.processes


SPINNERS = ("    for _ in range(54):\n        if os.fork() == 0:\n            os.setsid()\n            while True:\n"
            "                pass\n    time.sleep(60)\n")


@pytest.mark.skipif(not ISOLATION.cgroups, reason="an equal CPU share per slot needs cgroups (root)")
def test_a_neighbours_spinners_do_not_starve_the_classmate_beside_it(runner):
    """54 processes spinning in one slot take that slot's CPU share, not the other slot's: the
    classmate graded beside them keeps every probe."""
    neighbour = runners.Runner(ISOLATION, ["torch", "time", "math", "os"], limits=LIMITS).start()
    try:
        spinning = neighbour.grade("import time\n" + with_train(SPINNERS), "model.py", "virtual", ["train"], LIMITS,
                                   rules=False)
        time.sleep(2)  # the spinners are running
        probes = ["construct", "forward", "train", "time_forward"]
        classmate = runner.grade(SOLUTION, "model.py", "virtual", probes, LIMITS)
        outcomes = {name: classmate.outcome(name) for name in probes}
        classmate.finish()
        runner.clean()
        assert {name: o.failure for name, o in outcomes.items() if o.failure} == {}
        assert "did not finish" in spinning.outcome("train").failure
    finally:
        neighbour.close()


@FRESH
@pytest.mark.parametrize("judge", ["import grader.reference", "import grader.checks.test_part4", "import grader.rubric",
                                   "open(grader_dir + '/reference.py').read()"])
def test_the_graders_own_side_is_not_in_the_sandbox(runner, judge):
    """The references, checks and rubric are the judge's: student code can neither import nor read them."""
    body = (f"    import sys, grader\n    grader_dir = grader.__path__[0]\n"
            f"    sys.modules.pop('grader.reference', None)\n    try:\n        {judge}\n"
            f"    except (ImportError, OSError, SyntaxError) as error:\n"
            f"        raise RuntimeError('absent') from error\n    raise RuntimeError('present')\n")
    outcome, _ = train_outcome(runner, with_train(body))
    assert "RuntimeError: absent" in outcome.failure, outcome.failure


def test_a_probe_replaced_at_import_is_not_the_one_that_runs(runner):
    """The probe is bound before the submission is loaded: rewriting the registry changes nothing."""
    forger = ("import grader.runner.probes as registry\n\n\ndef forged(probe):\n    raise RuntimeError('forged')\n\n\n"
              "registry.PROBES['train'] = forged\n")
    outcome, _ = train_outcome(runner, forger + SOLUTION)
    assert outcome.failure is None and outcome.facts.losses.values, outcome.failure


KEYS = ("    import ctypes\n    libc = ctypes.CDLL(None, use_errno=True)\n"
        "    keyctl = {'x86_64': 250, 'aarch64': 219}[os.uname().machine]\n")


def test_a_kernel_key_does_not_reach_the_next_submission(runner):
    """Keys live per uid, past every process: each probe starts with the uid's keyrings empty."""
    add = (KEYS + "    made = libc.syscall(248 if keyctl == 250 else 217, b'user', b'mp-lab-left', b'alice', 5, -4)\n"
           "    raise RuntimeError(f'made {made}')\n")  # add_key(..., KEY_SPEC_USER_KEYRING)
    made, _ = train_outcome(runner, with_train(add))
    assert "RuntimeError: made " in made.failure and "made -1" not in made.failure, made.failure
    search = KEYS + "    raise RuntimeError(f'found {libc.syscall(keyctl, 10, -4, b\"user\", b\"mp-lab-left\", 0)}')\n"
    found, _ = train_outcome(runner, with_train(search))  # KEYCTL_SEARCH in the user keyring
    assert "RuntimeError: found -1" in found.failure, found.failure


def test_a_driver_that_kills_the_child_asking_it_means_no_gpu(monkeypatch):
    """The zygote asks torch for its GPUs in a child (it must never start CUDA itself); a driver
    that ends that child leaves the zygote running, with no GPU."""
    import os

    import torch

    from grader.runner import zygote

    monkeypatch.setattr(torch.backends.cuda, "is_built", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: os._exit(3))
    assert zygote._visible_gpus() == 0
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert zygote._visible_gpus() == 2


def test_code_left_to_run_when_its_objects_are_freed_runs_before_the_tamper_check(runner):
    """A generator's `finally` in a reference cycle is a finalizer the rules cannot see: the probe
    collects it before its tamper check, so what it does there is judged, and nothing of the
    submission runs after the check."""
    source = with_train("    def later():\n"
                        "        try:\n"
                        "            yield\n"
                        "        finally:\n"
                        "            torch.cuda.synchronize = print\n"
                        "    cycle = [later()]\n"
                        "    next(cycle[0])\n"
                        "    cycle.append(cycle)\n")
    outcome, _ = train_outcome(runner, source)
    assert outcome.failure.startswith(TAMPER) and "torch.cuda.synchronize" in outcome.failure, outcome


# -- the tamper check (grader.runner.snapshot): what it names ------------------------------------
@pytest.mark.parametrize("change, named", [
    (lambda patch: patch.setattr(torch.nn.functional, "gelu", print), "torch.nn.functional.gelu"),
    (lambda patch: patch.delattr(torch.Tensor, "backward"), "Tensor.backward"),
    (lambda patch: patch.setattr(time, "perf_counter_extra", print, raising=False), "time.perf_counter_extra"),
])
def test_the_snapshot_names_what_was_replaced_removed_or_added(monkeypatch, change, named):
    from grader.runner.snapshot import Snapshot

    snapshot = Snapshot()
    monkeypatch.setattr(torch, "relu", torch.relu)  # the same object put back: no change
    assert snapshot.changed() is None
    change(monkeypatch)
    assert snapshot.changed() == named


# -- probes run in turn (grader.contract.TOGETHER): one process a group, each probe on its own ----
def with_first_lines(**bodies):
    """The solution, each named function of it (or method: the first of that name, SimpleMPModel's)
    starting with its body (indented by the caller)."""
    source = "import os\n" + SOLUTION
    for function, body in bodies.items():
        head = next(line for line in source.splitlines() if line.lstrip().startswith(f"def {function}("))
        source = source.replace(head + "\n", head + "\n" + body, 1)
    return source


def group_outcomes(runner, source, probes=("construct", "forward", "time_forward", "profile", "train", "pipeline")):
    return graded(runner, source, probes)[0]


def graded(runner, source, probes):
    """({probe: outcome}, what the submission wrote) of one grading in virtual mode."""
    session = runner.grade(source, "model.py", "virtual", list(probes), LIMITS, rules=False)
    outcomes = {name: session.outcome(name) for name in probes}
    session.finish()
    runner.clean()
    return outcomes, bytes(session.output).decode()


def probe_pids(runner):
    """{probe: the pid its function ran in}, for time_forward, profile and train."""
    def said(name):  # (what the probes print is not kept)
        return f"    os.write(2, f'pid {name} {{os.getpid()}}\\n'.encode())\n"

    pids = with_first_lines(time_forward=said("time_forward"), profile_stages=said("profile"), train=said("train"))
    session = runner.grade(pids, "model.py", "virtual", ["time_forward", "profile", "train"], LIMITS, rules=False)
    for name in ("time_forward", "profile", "train"):
        assert session.outcome(name).facts is not None
    printed = dict(line.split()[1:] for line in bytes(session.output).decode().splitlines() if line.startswith("pid "))
    session.finish()
    runner.clean()
    return printed


def test_a_probe_joins_the_run_of_the_one_it_goes_on_from_only_right_after_it():
    from grader.runner.probes import chains

    everything = ["construct", "forward", "time_forward", "profile", "train", "pipeline"]
    assert chains(everything) == [everything[:4], ["train"], ["pipeline"]]
    assert chains(["forward", "construct"]) == [["forward"], ["construct"]]
    assert chains(["construct", "time_forward", "forward"]) == [["construct"], ["time_forward"], ["forward"]]
    assert chains(["time_forward", "profile"]) == [["time_forward", "profile"]]
    assert chains(["forward"]) == [["forward"]] and chains([]) == []


def built(source):
    """`source`, its SimpleMPModel saying 'built' on stderr each time it is constructed."""
    init = "        super().__init__()\n"
    return source.replace(init, init + "        os.write(2, b'built\\n')\n", 1)


def test_forward_time_forward_and_profile_go_on_with_the_model_construct_built(runner):
    """One constructor call for the four probes in one process, as the handout makes one model."""
    probes = ("construct", "forward", "time_forward", "profile")
    outcomes, output = graded(runner, built(with_first_lines()), probes)
    assert all(o.facts is not None for o in outcomes.values()), outcomes
    assert output.count("built") == 1


SEEN = "    os.write(2, f'seen {getattr(model, \"calls\", 0)} {model.layer1.training} {len(model._forward_hooks)} " \
       "{len(model.log)} {CALLS} {len(LOG)} {torch.cuda.current_device()} " \
       "{torch.cuda.current_stream(0) == torch.cuda.default_stream(0)}\\n'.encode())\n"
CHANGES = {  # what forward changes, of the model or of the submission's module, each call
    "an attribute": "        self.calls = getattr(self, 'calls', 0) + 1\n",
    "a submodule's mode": "        self.layer1.eval()\n",
    "torch's registry of hooks": "        self.register_forward_hook(lambda *args: None)\n",
    "a list it holds": "        self.log.append(1)\n",
    "a global": "        global CALLS\n        CALLS += 1\n",
    "a global list": "        LOG.append(1)\n",
    "the current GPU": "        torch.cuda.set_device(1)\n",
    "a GPU's current stream": "        torch.cuda.set_stream(torch.cuda.Stream(0))\n",
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_probe_whose_calls_change_the_model_or_the_module_leaves_the_next_what_a_probe_alone_gets(runner, change):
    """profile_stages sees a fresh model of a fresh load, as alone: what forward (and time_forward,
    which calls it) did to theirs is not there."""
    source = "CALLS, LOG = 0, []\n" + with_first_lines(forward=CHANGES[change], profile_stages=SEEN)
    source = source.replace("        super().__init__()\n", "        super().__init__()\n        self.log = []\n", 1)
    outcomes, output = graded(runner, built(source), ("construct", "forward", "time_forward", "profile"))
    assert all(o.facts is not None for o in outcomes.values()), outcomes
    assert [line for line in output.splitlines() if line.startswith("seen ")] == ["seen 0 True 0 0 0 0 0 True"] * 2
    assert output.count("built") >= 2  # (the grader builds what the probe before changed afresh)


@pytest.mark.parametrize("ending", ["        os.kill(os.getpid(), 9)\n", "        while True:\n            pass\n",
                                    "        os._exit(0)\n"])
def test_a_forward_that_crashes_or_never_ends_costs_construct_nothing(runner, ending):
    """construct's facts are reported before forward's work begins, in the run they share."""
    outcomes = group_outcomes(runner, with_first_lines(forward=ending), ("construct", "forward", "time_forward"))
    assert outcomes["construct"].facts is not None, outcomes["construct"]
    assert outcomes["construct"].facts.layers["w1"].device == "cuda:0"
    assert outcomes["forward"].failure is not None


def test_a_constructor_that_tampers_costs_construct_and_forward_both(runner):
    """What construct reports was observed in an untampered runtime: tampering in the constructor
    is construct's finding, and forward's, which makes the same call."""
    patched = with_first_lines().replace("        super().__init__()\n",
                                         "        super().__init__()\n        torch.cuda.synchronize = print\n", 1)
    outcomes = group_outcomes(runner, patched, ("construct", "forward"))
    for name in ("construct", "forward"):
        assert outcomes[name].failure is not None and outcomes[name].failure.startswith(TAMPER), outcomes[name]


def test_a_module_too_large_to_read_whole_is_never_gone_on_with():
    """Its globals are not copied, one reference each, into a reading: the rest of the run goes on
    afresh instead."""
    import types

    from grader.runner import model_state

    module = types.ModuleType("submission")
    module.TABLE = [None] * model_state.OBJECTS_CAP
    assert model_state.of_module(module) is None
    module.TABLE = [None] * 10
    assert model_state.of_module(module).same(model_state.of_module(module))


def test_reading_a_model_runs_none_of_the_submissions_code():
    """Not even a metaclass's `__eq__` (the rules refuse metaclasses; the reading does not rely on it)."""
    import types

    import torch

    from grader.runner import model_state

    ran = []

    class Meta(type):
        def __eq__(cls, other):
            ran.append(other)
            return NotImplemented

        __hash__ = type.__hash__

    class Tag(metaclass=Meta):
        pass

    model, module = torch.nn.Linear(2, 2), types.ModuleType("submission")
    model.tag, module.TAG = Tag(), Tag()
    assert model_state.of_model(model).same(model_state.of_model(model))
    assert model_state.of_module(module).same(model_state.of_module(module))
    assert ran == []


def test_a_probe_that_raises_costs_only_itself_not_the_rest_of_its_run(runner):
    outcomes = group_outcomes(runner, with_first_lines(time_forward="    raise ValueError('no clock here')\n"))
    assert "no clock here" in outcomes["time_forward"].failure, outcomes["time_forward"]
    for name in ("construct", "forward", "profile", "train", "pipeline"):
        assert outcomes[name].failure is None and outcomes[name].facts is not None, (name, outcomes[name])


def test_probes_share_a_process_in_the_groups_the_contract_names(runner):
    printed = probe_pids(runner)
    assert printed["time_forward"] == printed["profile"] != printed["train"], printed


def test_a_sandbox_can_take_the_shared_facts_from_another_and_skip_computing_them(runner):
    """A batch's slots after the first: their zygotes never compute the facts every grading shares."""
    second = runners.Runner(ISOLATION, ["torch", "time", "math", "os"], limits=LIMITS, shared_from=runner).start()
    try:
        second.ready()
        assert second._shared is None  # its zygote said nothing of them
        assert second.shared == runner.shared and runner.shared is not None
    finally:
        second.close()


def test_with_one_core_to_use_one_process_runs_every_probe():
    """A batch's slot, whose neighbours use the other cores."""
    zygote = runners.Runner(ISOLATION, ["torch", "time", "math", "os"], limits=LIMITS, cores=1).start()
    try:
        printed = probe_pids(zygote)
    finally:
        zygote.close()
    assert printed["time_forward"] == printed["profile"] == printed["train"], printed


@pytest.mark.parametrize("ending", ["    os.kill(os.getpid(), 9)\n", "    while True:\n        pass\n"])
def test_a_probe_that_crashes_or_overruns_costs_only_itself_not_the_rest_of_its_group(runner, ending):
    outcomes = group_outcomes(runner, with_first_lines(time_forward=ending))
    failure = outcomes["time_forward"].failure
    assert "crashed during time_forward()" in failure or "time_forward() did not finish within 5 s" in failure
    for name in ("construct", "forward", "profile", "train", "pipeline"):  # before it, after it, beside it
        assert outcomes[name].failure is None and outcomes[name].facts is not None, (name, outcomes[name])


def test_exiting_with_the_status_that_asks_for_a_fresh_process_is_tampering_too(runner):
    """Only the grader's own exit after its check of the process starts the rest afresh: the
    submission's, with the same status, ends its probe like any other exit."""
    flag = f"/tmp/exited-{uuid.uuid4().hex}"
    once = f"    if not os.path.exists({flag!r}):\n        open({flag!r}, 'w').close()\n        os._exit(87)\n"
    outcomes = group_outcomes(runner, with_first_lines(time_forward=once))
    assert outcomes["time_forward"].failure.startswith(TAMPER) and "exit status 87" in outcomes["time_forward"].failure
    for name in ("construct", "forward", "profile", "train", "pipeline"):
        assert outcomes[name].failure is None and outcomes[name].facts is not None, (name, outcomes[name])


def test_a_probe_that_leaves_its_process_group_is_still_stopped_at_its_limit(runner):
    outcomes = group_outcomes(runner, with_first_lines(
        time_forward="    os.setpgid(0, os.getpgid(os.getppid()))\n    while True:\n        pass\n"))
    assert "time_forward() did not finish within 5 s of CPU time" in outcomes["time_forward"].failure
    for name in ("construct", "forward", "profile", "train", "pipeline"):
        assert outcomes[name].failure is None and outcomes[name].facts is not None, (name, outcomes[name])


def test_what_one_function_leaves_set_in_torch_does_not_reach_the_next_probe(runner):
    """An honest slip (a global setting changed and never put back) costs only its own function's
    checks, as when each probe had a process of its own."""
    slips = with_first_lines(time_forward="    torch.set_default_dtype(torch.float64)\n",
                             train="    torch.set_grad_enabled(False)\n")
    outcomes = group_outcomes(runner, slips)
    assert outcomes["time_forward"].failure is None  # (torch itself repoints torch.Storage: not tampering)
    layer1 = 4 * (2000 * 1000 + 2000)  # float32, as torch's default dtype is
    assert outcomes["profile"].facts.param_bytes["cuda:0"] == layer1, outcomes["profile"]
    assert outcomes["pipeline"].facts is not None and outcomes["pipeline"].facts.attempted, outcomes["pipeline"]


def _torch_replaced():
    import torch

    gelu = torch.nn.functional.gelu
    torch.nn.functional.gelu = print  # (not torch's own: torch replacing its own is not tampering)
    return lambda: setattr(torch.nn.functional, "gelu", gelu)


def _torch_call(on, off):
    def leave():
        import torch

        on(torch)
        return lambda: off(torch)
    return leave


def _global_hook():
    import torch

    return torch.nn.modules.module.register_module_forward_hook(lambda *args: None).remove


def _optimizer_hook():
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    return register_optimizer_step_pre_hook(lambda *args: None).remove


def _saved_tensor_hooks():
    import torch

    def offloaded():  # a `with` a kept generator holds open
        with torch.autograd.graph.save_on_cpu():
            yield

    kept = offloaded()
    next(kept)
    return lambda: next(kept, None)


def _memory_kept():
    import torch

    kept = torch.ones(80_000_000)  # 320 MB
    return lambda: kept


LEFT = {  # what a probe may leave behind -> how to put it back
    "torch changed": _torch_replaced,
    "the default dtype": _torch_call(lambda t: t.set_default_dtype(t.float64),
                                     lambda t: t.set_default_dtype(t.float32)),
    "grad mode": _torch_call(lambda t: t.set_grad_enabled(False), lambda t: t.set_grad_enabled(True)),
    "a global hook": _global_hook,
    "forward AD": _torch_call(lambda t: t.autograd.forward_ad.enter_dual_level(),
                              lambda t: t.autograd.forward_ad.exit_dual_level()),
    "memory kept": _memory_kept,
    "a global optimizer hook": _optimizer_hook,
    "saved-tensor hooks": _saved_tensor_hooks,
}


@pytest.fixture
def torch_kept(monkeypatch):
    """What InTurn wraps in torch is put back after the test."""
    import torch

    monkeypatch.setattr(torch, "set_num_interop_threads", torch.set_num_interop_threads)
    return torch


@pytest.mark.parametrize("left", LEFT)
def test_what_a_probe_leaves_behind_gives_the_next_a_fresh_process(left, torch_kept):
    """Nothing is put back inside the process: where it is not as the first probe found it, the
    rest of the group goes on in a fresh one (grader.runner.in_turn.Dirty)."""
    from grader.runner.in_turn import Dirty, InTurn

    in_turn = InTurn()
    in_turn.run(["construct"], SOLUTION, "model.py", "virtual", lambda *reported: None)
    undo = LEFT[left]()
    try:
        with pytest.raises(Dirty):
            in_turn.run(["construct"], SOLUTION, "model.py", "virtual", lambda *reported: None)
    finally:
        undo()
    clean = InTurn()
    clean.run(["construct"], SOLUTION, "model.py", "virtual", lambda *reported: None)
    # what a clean probe leaves lets the next run:
    clean.run(["construct"], SOLUTION, "model.py", "virtual", lambda *reported: None)


@pytest.mark.parametrize("top, init", [
    ("torch.set_num_interop_threads(1)\n", ""),  # torch allows it once a process
    ("", "        torch.set_num_interop_threads(torch.get_num_interop_threads())\n"),  # in every model made
    ("BUFFER = torch.empty(300_000_000, dtype=torch.float32)\n", ""),  # 1.2 GB of the 2 GiB a probe may add
])
def test_module_level_code_runs_as_in_a_process_of_its_own(runner, top, init):
    source = with_first_lines().replace("        super().__init__()\n", "        super().__init__()\n" + init, 1)
    outcomes = group_outcomes(runner, "import torch\n" + top + source)
    assert all(o.facts is not None for o in outcomes.values()), outcomes


def test_judging_the_process_runs_none_of_the_submissions_code(runner):
    """An object the submission stored in torch's settings is judged by its type: its own methods
    (a __repr__ that raises, a property that loops) never run between probes."""
    stored = ("import collections\n"
              "class Loops(collections.UserList):\n"
              "    def __init__(self):\n        pass\n"
              "    @property\n    def data(self):\n        while True:\n            pass\n"
              "class Raises:\n    def __repr__(self):\n        raise ValueError('boom')\n"
              "torch.set_printoptions(precision=Loops(), linewidth=Raises())\n")
    outcomes = group_outcomes(runner, with_first_lines() + stored)
    assert all(o.facts is not None for o in outcomes.values()), outcomes


def test_a_call_torch_allows_once_a_process_counts_when_it_succeeds(torch_kept, monkeypatch):
    """After a successful `torch.set_num_interop_threads` (torch allows one a process, whatever the
    value), the next probe needs a fresh process; a call torch refuses changes nothing."""
    from grader.runner.in_turn import InTurn

    def once(count):  # torch's own, in a process that has not called it yet
        if count <= 0:
            raise RuntimeError("Expected num_threads > 0")

    monkeypatch.setattr(torch_kept, "set_num_interop_threads", once)
    in_turn = InTurn()
    with pytest.raises(RuntimeError):
        torch_kept.set_num_interop_threads(0)
    assert in_turn._left() is None
    torch_kept.set_num_interop_threads(1)
    assert "set_num_interop_threads" in in_turn._left()

    class Holder:
        call = torch_kept.set_num_interop_threads

    assert Holder().call is torch_kept.set_num_interop_threads  # not bound as a method, as torch's builtin is not


def test_what_a_probe_leaves_to_finalize_never_runs(runner):
    """As in a process that ended: a module-level generator's `finally` runs in no later probe."""
    left = "def _left():\n    try:\n        yield\n    finally:\n        os._exit(3)\n_w = _left()\nnext(_w)\n"
    outcomes = group_outcomes(runner, with_first_lines() + left)
    assert all(o.facts is not None for o in outcomes.values()), outcomes


def test_a_probe_that_exits_as_reported_costs_only_itself(runner):
    outcomes = group_outcomes(runner, with_first_lines(time_forward="    os._exit(86)\n"))
    assert outcomes["time_forward"].failure.startswith(TAMPER)
    assert all(outcomes[name].facts is not None for name in ("construct", "forward", "profile", "train", "pipeline"))


def test_rewriting_the_events_the_grader_times_with_is_tampering(runner):
    """profile's own figure is the grader's own timing with torch.cuda.Event, beside the student's."""
    outcomes = group_outcomes(runner, with_first_lines(
        profile_stages="    torch.cuda.Event.elapsed_time = lambda self, end: 1.0\n"), probes=("profile",))
    assert outcomes["profile"].failure.startswith(TAMPER) and "Event.elapsed_time" in outcomes["profile"].failure


def test_tampering_costs_only_the_probe_that_did_it(runner):
    outcomes = group_outcomes(runner, with_first_lines(time_forward="    torch.nn.functional.gelu = print\n"))
    assert outcomes["time_forward"].failure.startswith(TAMPER)
    assert all(outcomes[name].facts is not None for name in ("construct", "forward", "profile", "train", "pipeline"))


def test_virtual_groups_hold_every_probe_once_and_real_gpus_run_each_alone():
    from grader.contract import TOGETHER, in_turn
    from grader.facts import GRADING

    groups = in_turn(GRADING, "virtual")
    assert sorted(name for group in groups for name in group) == sorted(GRADING) and len(groups) == len(TOGETHER)
    assert in_turn(GRADING, "virtual", cores=1) == [[name for group in TOGETHER for name in group]]
    assert in_turn(GRADING, "real") == [[name] for name in GRADING]
    assert in_turn(["timeline", "train"], "virtual") == [["train"], ["timeline"]]  # a tool's probe: alone
