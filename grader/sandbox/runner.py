"""The zygote's parent end: start it in its sandbox, hand it a submission's text, and read each
probe's one result, bounded in size and time, on the trusted side.

Each probe writes one `grader.wire` frame into a pipe of its own; a collector thread reads every
pipe of a session (and the submission's output, capped) until each result is in or the deadline
passes, whatever arrives. A malformed, oversized, late or missing result is that probe's failure,
never the grader's crash; each descriptor is closed exactly once.
"""
import dataclasses
import fcntl
import os
import select
import signal
import socket
import subprocess
import threading
import time

from grader import procs, wire
from grader.bounded import shorten
from grader.contract import in_turn, probe_seconds, wall_seconds
from grader.facts import DESCRIPTIONS, PROBES, Malformed
from grader.sandbox import isolation as isolations

RESULT_CAP = 48 * 2**20  # the largest result: train()'s final weights as float32 (16 MB), with room
PIPE_BYTES = 2**20  # each result pipe's buffer (Linux's largest for a user, /proc/sys/fs/pipe-max-size)
OUTPUT_CAP = 2**20  # what the submission prints, kept per submission; the rest is counted and dropped
ZYGOTE_BYTES = 2 * 2**30  # a slot's memory beyond what its probes may add: the zygote's own (torch, the runtime)
READY_SECONDS = 120  # importing torch in a fresh sandbox, on a slow machine
CLEAN_SECONDS = 30
GRACE = 5.0  # the session enforces each probe's limit; the reader's deadline is a backstop
ATTACHED = None  # the batch's Runner for the worker it forks: that worker's pytest run uses it


class RunnerLost(Exception):
    """The zygote ended or stopped answering; the next submission gets a fresh one."""


@dataclasses.dataclass(frozen=True)
class Limits:
    seconds: float  # per probe
    memory_bytes: int  # address space a probe may add (virtual mode)
    file_bytes: int = 16 * 2**20  # the largest file student code may write
    processes: int = 64  # processes (threads included) of the student's own user or user namespace
    threads: int = 1  # torch threads per probe


@dataclasses.dataclass(frozen=True)
class Outcome:
    """One probe's result: its facts (of the probe's type in grader.facts) and blobs, or the failure
    that stands for them."""
    facts: object | None = None
    blobs: dict = dataclasses.field(default_factory=dict)
    failure: str | None = None


class Runner:
    """One zygote, in its sandbox, and the uid its submissions run as (its own while it lives)."""

    def __init__(self, isolation, allowed, hidden=(), long_lived=False, limits=None, cores=None, shared_from=None):
        """`allowed`: the modules a submission may import. A `long_lived` zygote (a batch's) also
        imports torch._dynamo (a second), which real GPUs' optimizer steps import, once for every
        student, as does any zygote whose students cannot read the interpreter's files later (a uid
        of their own, no namespaces); a single run's leaves it to the probe that needs it (virtual
        GPUs never do: grader/virtual/dynamo.py). `limits`: the probes' (the slot's cgroup, where
        there is one, holds what they may add and the zygote). `cores`: how many processes of one
        submission's probes may run side by side (grader.contract.in_turn; by default, as many
        as this process may use). `shared_from`: another runner of the same grader (a batch's
        first slot) whose sandbox computes the facts every grading shares for this one too: this
        zygote skips them."""
        self.isolation, self.long_lived = isolation, long_lived
        self.allowed, self.hidden = frozenset(allowed), tuple(hidden)
        self.preload = frozenset({"torch._dynamo"} if long_lived or isolation.kind == "uid" else ())
        self.gpus = None  # the CUDA GPUs the sandbox sees, once it is ready
        self.shared_from, self._shared = shared_from, None
        self.process = self.sock = self.group = None
        self.uid, self._uid_lock = isolation.claim_uid()
        self.limits = limits or Limits(30, 4 * 2**30)
        self.cores = cores or procs.usable_cores()

    def start(self):
        """Start the zygote (it imports torch: seconds); `ready()` waits for it."""
        ours, theirs = socket.socketpair()
        command = isolations.zygote_command(self.isolation, theirs.fileno(), self.allowed, self.preload, self.hidden,
                                            shared=self.shared_from is None)
        self.group = self.isolation.slot_group(str(self.uid or os.getpid()), self.limits.memory_bytes + ZYGOTE_BYTES,
                                               4 * self.limits.processes)
        if self.group is not None:
            command = self.group.wrap(command)
        env = None if self.isolation.kind == "bwrap" else isolations.environment()
        self.process = subprocess.Popen(command, pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL,
                                        start_new_session=True, cwd="/")
        theirs.close()
        self.sock, self._ready = ours, False
        return self

    def ready(self):
        if not self._ready:
            answer = self._answer(READY_SECONDS, "start")
            self.gpus, self._shared = answer["gpus"], answer["shared"]
            self._ready = True

    @property
    def shared(self):
        """The facts every grading shares, as JSON (grader.facts.Shared): computed by this sandbox,
        or by `shared_from`'s, before any submission."""
        source = self.shared_from or self
        source.ready()
        return source._shared

    def mode(self, asked):
        """("real" | "virtual", GPUs visible) for a --grader-mode of "auto", "real" or "virtual", by
        the GPUs the sandbox sees: real when two are visible. ValueError when real is asked for
        without them."""
        self.ready()
        if asked == "real" and self.gpus < 2:
            raise ValueError(f"--grader-mode real needs two CUDA GPUs; {self.gpus} visible")
        return (asked if asked != "auto" else "real" if self.gpus >= 2 else "virtual"), self.gpus

    def grade(self, source, path, mode, probes, limits=None, rules=True):
        """Start the probes `probes` on the submission's text on `mode` GPUs, under `limits` (by
        default the runner's); the Session reads their results. The zygote only forks the
        session: the text goes to the session alone, through a pipe of its own, so no student's
        data ever enters the zygote. The session applies the static rules first; `rules=False`
        skips them (the sandbox's own tests, which must meet code that got past them)."""
        self.ready()
        limits = limits or self.limits
        request_read, request_write = os.pipe()
        pipes = [_pipe() for _ in range(len(probes) + 1)]  # the output, then one per probe
        request = {"probes": list(probes), "groups": in_turn(list(probes), mode, self.cores), "source": source,
                   "path": path, "mode": mode,
                   "allowed": sorted(self.allowed) if rules else None, "descriptions": DESCRIPTIONS, "uid": self.uid,
                   **dataclasses.asdict(limits)}
        # The process limit counts per user: exact for a uid of its own, and for the sandbox's own
        # user namespace (Linux 5.14 and later count there); elsewhere it would count the grader's.
        if self.uid is None and not (self.isolation.kind == "bwrap" and not self.isolation.root):
            request["processes"] = None
        try:
            wire.send(self.sock, {"op": "grade"}, fds=[request_read] + [w for _, w in pipes])
        except OSError as error:
            os.close(request_write)
            raise RunnerLost(f"the sandbox is gone ({error.strerror})") from None
        finally:
            for fd in [request_read] + [w for _, w in pipes]:
                os.close(fd)
        threading.Thread(target=_send_request, args=(request_write, wire.pack(request)), daemon=True).start()
        deadline = time.monotonic() + probe_seconds(limits.seconds, mode, list(probes), self.cores) + GRACE
        session = Session(dict(zip(probes, (r for r, _ in pipes[1:]))), pipes[0][0], deadline, limits.seconds)
        try:
            self._answer(30, "grade")
        except RunnerLost:
            session.abandon()
            raise
        return session

    def clean(self):
        """Kill every process the last submission left and empty its /tmp; with a uid of its own,
        sweep that uid too. RunnerLost when the zygote cannot say it is done."""
        try:
            wire.send(self.sock, {"op": "clean"})
            killed = self._answer(CLEAN_SECONDS, "clean")["killed"]
        finally:
            if self.uid is not None:
                sweep_uid(self.uid)
        return killed

    def close(self):
        """End the zygote and its whole sandbox."""
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.process is not None:
            for kill in (lambda: os.killpg(self.process.pid, signal.SIGKILL), self.process.kill):
                try:
                    kill()
                except (ProcessLookupError, PermissionError):
                    pass
            self.process.wait()
            self.process = None
        if self.group is not None:
            self.group.remove()
            self.group = None
        if self.uid is not None:
            sweep_uid(self.uid)
            os.close(self._uid_lock)
            self.uid = None

    def _answer(self, seconds, what):
        if not select.select([self.sock], [], [], seconds)[0]:
            raise RunnerLost(f"the sandbox did not answer ({what}) within {seconds} s")
        try:
            header, fds = wire.receive(self.sock, 1 << 16)
        except (EOFError, OSError, wire.Unreadable) as error:
            raise RunnerLost(f"the sandbox ended ({what}): {error}") from None
        for fd in fds:
            os.close(fd)
        return header


def _pipe():
    """A pipe whose buffer holds PIPE_BYTES where the system allows it (Linux's default is 64 KiB): a
    probe writing a result of megabytes waits for the reader a few times, not hundreds."""
    read, write = os.pipe()
    try:
        fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    except OSError:  # past /proc/sys/fs/pipe-max-size, or the user's pipe quota: the default serves
        pass
    return read, write


def _send_request(fd, frame):
    """Write a session's request (a thread: the pipe holds less than a submission's text, and the
    session reads it only once it has started)."""
    try:
        wire.write_all(fd, frame)
    except OSError:
        pass  # the session is gone: its probes' outcomes say so
    finally:
        os.close(fd)


def run_once(lab, source, mode, probes):
    """{probe: Outcome} of `probes` on one submission's text, in a sandbox of its own started and
    ended here (`mode`: as --grader-mode takes it; ValueError when it cannot be had): for the tools
    (timeline, selftest), which grade nothing."""
    zygote = Runner(isolations.detect(), lab.allowed_imports, hidden=[lab.answer_key, *isolations.SECRETS],
                    limits=Limits(lab.seconds_per_function, lab.memory_bytes)).start()
    try:
        session = zygote.grade(source, "model.py", zygote.mode(mode)[0], probes)
        return {name: session.outcome(name) for name in probes}
    finally:
        zygote.close()


class Session:
    """The results of one submission's probes, collected by a thread as they arrive."""

    def __init__(self, pipes, output, deadline, seconds):
        self.seconds, self.deadline = seconds, deadline
        self.outcomes, self.output, self.dropped = {}, bytearray(), 0
        self._pipes = {fd: name for name, fd in pipes.items()}
        self._frames = {fd: wire.FrameReader(RESULT_CAP) for fd in pipes.values()}
        self._output_fd, self._done = output, threading.Condition()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def outcome(self, name):
        """The Outcome of probe `name`, waiting for it (at most until the deadline)."""
        with self._done:
            self._done.wait_for(lambda: name in self.outcomes)
            return self.outcomes[name]

    def finish(self):
        """Wait until every outcome is in (or reported late) and the output there is read."""
        self._thread.join()
        return self

    def abandon(self):
        """Stop waiting: outcomes not in by the collector's next wake-up are reported late; the
        thread ends by itself, no later than the deadline it was waiting for."""
        self.deadline = 0

    def _collect(self):
        """Until every result is in (or the deadline): then what output is already there, and no
        more, since a process the submission left behind may hold the output pipe for ever."""
        open_fds = set(self._pipes) | {self._output_fd}
        try:
            while open_fds - {self._output_fd}:
                left = self.deadline - time.monotonic()
                ready = select.select(list(open_fds), [], [], left)[0] if left > 0 else []
                if not ready:
                    break
                self._read_ready(ready, open_fds)
            while self._output_fd in open_fds and select.select([self._output_fd], [], [], 0)[0]:
                self._read_ready([self._output_fd], open_fds)
        finally:
            for fd in open_fds:
                os.close(fd)
            with self._done:
                for name in self._pipes.values():
                    self.outcomes.setdefault(name, Outcome(failure=self._late(name)))
                self._done.notify_all()

    def _read_ready(self, ready, open_fds):
        for fd in ready:
            try:
                done = not self._read(fd)
            except Exception as error:  # noqa: BLE001 - whatever a result holds ends that probe, not the reader
                if fd == self._output_fd:
                    raise
                name = self._pipes[fd]
                self._settle(name, Outcome(failure=f"the grading process sent an unreadable result during "
                                                   f"{DESCRIPTIONS[name]} ({type(error).__name__})"))
                done = True
            if done:
                open_fds.discard(fd)
                os.close(fd)

    def _read(self, fd):
        """Read what `fd` has; False once it is finished with (closed by the caller)."""
        if fd == self._output_fd:
            chunk = os.read(fd, 1 << 20)
            keep = max(0, OUTPUT_CAP - len(self.output))
            self.output += chunk[:keep]
            self.dropped += len(chunk) - min(len(chunk), keep)
            return bool(chunk)
        name = self._pipes[fd]
        try:
            frame = self._frames[fd].read(fd)
            if frame is None:
                return True
            self._settle(name, _outcome(name, *frame))
        except EOFError:  # the session reports every probe that ended: it, too, ended
            self._settle(name, Outcome(failure=f"the grading process ended during {DESCRIPTIONS[name]} before it "
                                                "could report (killed, or out of memory?)"))
        except wire.Unreadable as error:
            self._settle(name, Outcome(failure=f"the grading process sent an unreadable result during "
                                               f"{DESCRIPTIONS[name]}: {error}"))
        return False

    def _settle(self, name, outcome):
        with self._done:
            self.outcomes.setdefault(name, outcome)
            self._done.notify_all()

    def _late(self, name):
        return (f"{DESCRIPTIONS[name]} did not finish within {wall_seconds(self.seconds):g} s (an endless loop, "
                "or far too much work?)")


def _outcome(name, header, blobs):
    """The Outcome of probe `name`'s frame: its facts rebuilt as their type, or its failure."""
    if not isinstance(header, dict) or not (isinstance(header.get("facts"), dict) or
                                            isinstance(header.get("failure"), str)):
        raise wire.Unreadable("it holds neither facts nor a failure")
    if "failure" in header:
        return Outcome(failure=shorten(header["failure"]))
    try:
        return Outcome(facts=PROBES[name].facts.from_json(header["facts"]), blobs=blobs)
    except Malformed as error:
        raise wire.Unreadable(f"its facts do not fit their type ({error})") from None


def sweep_uid(uid):
    """Kill every process of `uid` (root only), from a helper that becomes `uid`, until none is
    left, and remove the files it left in the shared temporary folders."""
    for _ in range(100):
        if not procs.of_uid(uid):
            break
        pid = os.fork()
        if pid == 0:
            try:
                os.setgid(uid)
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)  # every process this uid may signal: its own
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        time.sleep(0.005)
    for folder in ("/tmp", "/var/tmp", "/dev/shm"):
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.stat(follow_symlinks=False).st_uid == uid:
                    if entry.is_dir(follow_symlinks=False):
                        subprocess.run(["rm", "-rf", "--one-file-system", entry.path], check=False)
                    else:
                        os.unlink(entry.path)
            except OSError:
                pass
