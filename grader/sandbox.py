"""Run one probe of a submission in a disposable child process.

The grader (the pytest process) never executes student code. Each probe forks a child that
loads the submission afresh under real or virtual GPUs, runs it, and writes its facts back as
JSON. A child that hangs, crashes, exits or exhausts memory costs only that probe; whatever it
does to torch, pytest or its own memory stays in the child.
"""
import ctypes
import json
import os
import pathlib
import pwd
import resource
import select
import signal
import time
import traceback

import torch

from grader import probes
from grader.guard import TAMPER, StudentError

PR_SET_PDEATHSIG = 1  # linux/prctl.h


class ProbeFailed(Exception):
    """The submission failed a probe as a whole; the message is for the student."""


class Child:
    """One probe of a submission, running in a forked child from the moment it is made."""

    def __init__(self, probe, submission, mode, rubric, run_as=None):
        self.probe, self.seconds = probe, rubric.seconds_per_function
        self.deadline = time.monotonic() + self.seconds
        read_end, write_end = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child: never returns
            os.close(read_end)
            os.setpgid(0, 0)
            _serve(write_end, probe, submission, mode, rubric, run_as)
        os.close(write_end)
        self.fd = read_end
        self._outcome = None

    def outcome(self):
        """The probe's facts, or the ProbeFailed that stands for them; waits for it once."""
        if self._outcome is None:
            self._outcome = self._collect()
        return self._outcome

    def close(self):
        """End the child now if its outcome was never asked for."""
        if self._outcome is None:
            self.deadline = 0
            self._outcome = self._collect()

    def _collect(self):
        what = probes.DESCRIPTIONS[self.probe]
        try:
            data = _read_all(self.fd, self.deadline)
        finally:
            os.close(self.fd)
            _kill_group(self.pid)
        status = os.waitpid(self.pid, 0)[1]
        if data is None:
            return ProbeFailed(f"{what} did not finish within {self.seconds:g} s (an endless loop, or far too "
                               "much work?)")
        if not data and os.WIFSIGNALED(status):  # a crash (or the kernel's out-of-memory killer)
            return ProbeFailed(f"the grading process crashed during {what} ({_describe(status)})")
        if not data:  # our child always writes its line before it exits: the submission exited it
            return ProbeFailed(f"{TAMPER}: your code ended the grading process during {what} "
                               f"({_describe(status)}); a submission must not exit the process")
        outcome = json.loads(data)
        return ProbeFailed(outcome["failure"]) if "failure" in outcome else outcome["facts"]


def _serve(write_end, probe, submission, mode, rubric, run_as):
    try:
        source = _read(submission)
        if mode == "virtual":
            _limit_memory(rubric.memory_bytes)  # (real CUDA reserves far more address space than it uses)
            torch.set_num_threads(1)  # one core per probe: probes run side by side, op costs stay comparable
        if run_as:
            _become(run_as)
        die_with_parent()  # after any change of user, which clears it
        outcome = {"facts": probes.run(probe, submission, source, mode, rubric.allowed_imports)}
    except StudentError as error:
        outcome = {"failure": str(error)}
    except BaseException:  # noqa: BLE001 - anything else is the grader's fault: say so, plainly
        outcome = {"failure": "internal grader error, please report it:\n" + traceback.format_exc()}
    try:
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(json.dumps(outcome).encode() + b"\n")
    finally:
        os._exit(0)


def _read(submission):
    try:
        return pathlib.Path(submission).read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise StudentError(f"cannot read the submission {submission}: {error}") from None


def _become(user):
    """Run the submission as `user` (the batch asks for `nobody` when it runs as root), who can
    write none of the grader's, the rubric's or the results' files."""
    account = pwd.getpwnam(user)
    os.setgroups([])
    os.setgid(account.pw_gid)
    os.setuid(account.pw_uid)


def die_with_parent():
    """Linux: be killed when the parent dies, so that a killed grader leaves no orphan running."""
    parent = os.getppid()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0 or os.getppid() != parent:
        os._exit(1)  # the parent is already gone


def _limit_memory(extra_bytes):
    with open("/proc/self/statm") as statm:
        used = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (used + extra_bytes, used + extra_bytes))


def _read_all(fd, deadline):
    """The child's one line, b"" if it ended without writing it, None if the deadline passed.

    Reading stops at the newline rather than at EOF, so a process the submission started and
    left holding the pipe cannot stall the grader.
    """
    data = b""
    while not data.endswith(b"\n"):
        # A child that finished in time is not late because its outcome is read late.
        if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b""
        data += chunk
    return data


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _describe(status):
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        hint = " - out of memory?" if sig == signal.SIGKILL else ""
        return f"killed by signal {signal.Signals(sig).name}{hint}"
    return f"exit status {os.WEXITSTATUS(status)}"
