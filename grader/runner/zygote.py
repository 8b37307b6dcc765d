"""The zygote: import torch and the runtime once, then, per submission, fork a session that runs
its probes, and clean up after it.

Once ready it says so, with what only a process with torch can tell: how many CUDA GPUs it sees,
and the facts every grading shares (grader.runner.probes.shared), computed before any submission.
Requests come over the socket the grader passed (`--socket-fd`) as `grader.wire` frames:
  {"op": "grade"} with descriptors [request, output, result_1, ..., result_n]: fork a session and
      reply {"session": pid}. The session, not the zygote, reads the submission's request from
      `request`, so nothing of any student ever enters the zygote's memory, which every later
      session inherits. The session applies the static rules (grader.rules) before any of the
      submission runs; then each of its children runs a group of probes in turn (the request's
      `groups`), and each probe writes one frame to its result descriptor.
  {"op": "clean"}: kill every process the submission left, wipe the private /tmp and /dev/shm;
      reply {"killed": n}.
The zygote is a subreaper, so a process the submission double-forks or `setsid`s away is still
its descendant, and it is not dumpable, so a process of the same user cannot read or trace it.
With `--fresh`, each session starts in IPC and mount namespaces of its own, with an empty /tmp and
/dev/shm: no shared-memory segment or file of one student outlives it.
"""
import argparse
import ctypes
import gc
import importlib
import os
import resource
import shutil
import signal
import socket
import sys
import time
import traceback

from grader import heap, rules, wire
from grader.contract import wall_seconds
from grader.procs import descendants, exit_fd, wait_for_exits

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_CAPBSET_DROP, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 24, 36, 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
REPORTED = 86  # a child's exit status once every frame is written: any other ending is the session's to report
AFRESH = 87  # a child's exit status when the rest of its probes need a fresh process (grader.runner.in_turn.Dirty)
REPORTED_ONE, AFRESH_NEXT = b"+", b"r"  # progress bytes: a probe's frame is written; the child exits AFRESH
CLONE_NEWNS, CLONE_NEWIPC = 0x00020000, 0x08000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 1 << 12, 1 << 14, 1 << 18
KEYCTL = {"x86_64": 250, "aarch64": 219}.get(os.uname().machine)  # the keyctl system call's number
KEYCTL_JOIN_SESSION_KEYRING, KEYCTL_CLEAR, KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING = 1, 7, -4, -5
REQUEST_CAP = 1 << 20  # a request carries the submission's text (capped at 256 KiB by the grader)
HANDOVER_CAP = 1 << 20  # what a child of the zygote computes for it (grader.runner.probes.shared: a few KiB)
TMP_BYTES = 64 * 2**20  # each student's /tmp and /dev/shm
GRACE = 1.0  # seconds between a probe's wall-clock backstop and its kill
WATCH = 0.1  # seconds between the session's looks at its probes' limits (an end or a report wakes it at once)
LIBC = ctypes.CDLL(None, use_errno=True)


def prctl(option, value, arg=0):
    if LIBC.prctl(option, value, arg, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def main(argv=None):
    heap.keep_freed_memory()  # before torch loads: every probe forked from here inherits it
    parser = argparse.ArgumentParser(prog="python -m grader.runner", description=__doc__.splitlines()[0])
    parser.add_argument("--socket-fd", type=int, required=True, help="the grader's end of the request socket")
    parser.add_argument("--allowed", default="", help="comma-separated modules a submission may import: imported "
                        "before forking, and the static rules' vocabulary read from them")
    parser.add_argument("--preload", default="", help="comma-separated modules to import before forking where two "
                        "GPUs are visible: torch._dynamo, which real GPUs' optimizer steps import (virtual GPUs' "
                        "never do)")
    parser.add_argument("--no-shared", dest="shared", action="store_false", help="skip the facts every grading "
                        "shares: the grader has them from another of its sandboxes (a batch's first slot)")
    parser.add_argument("--private-tmp", action="store_true", help="/tmp and /dev/shm are this sandbox's own")
    parser.add_argument("--fresh", action="store_true", help="each session gets IPC and mount namespaces and an "
                        "empty /tmp and /dev/shm of its own (needs CAP_SYS_ADMIN here: root, or bubblewrap's)")
    parser.add_argument("--hide", action="append", default=[], metavar="PATH", help="with --fresh: a file or folder "
                        "that does not exist for student code (an empty one stands in its place); repeatable")
    args = parser.parse_args(argv)
    sock = socket.socket(fileno=args.socket_fd)
    allowed = frozenset(filter(None, args.allowed.split(",")))
    for name in sorted(allowed):  # a student's identity may not read them later
        importlib.import_module(name)
    import torch.optim  # noqa: F401 - preloaded: every probe that takes an optimizer step needs it

    from grader.runner import in_turn, probes  # noqa: F401 - the runtime, the probes and what they import: before
    # any session, whose namespaces may cover the folder they come from (a checkout under /tmp)

    gpus = _visible_gpus()
    shared = _in_child(probes.shared) if args.shared else None  # on the other core, while this process does the rest
    rules.vocabulary(allowed)  # once, for every session
    probes.prepare()
    shared = shared() if shared else None
    for name in filter(None, args.preload.split(",") if gpus >= 2 else ()):
        importlib.import_module(name)

    # What is preloaded lives for ever: a collection in a probe must not walk it (its first full one
    # would touch every page the fork shares, milliseconds of CPU time that virtual GPUs' clocks
    # count, inside whatever the submission is timing).
    gc.collect()
    gc.freeze()

    prctl(PR_SET_CHILD_SUBREAPER, 1)
    prctl(PR_SET_DUMPABLE, 0)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    wire.send(sock, {"ready": os.getpid(), "gpus": gpus, "shared": shared})
    while True:
        try:
            request, fds = wire.receive(sock, 1 << 16)
        except (EOFError, OSError, wire.Unreadable):
            return 0
        _reap()
        if request["op"] == "grade":
            reply = {"session": _fork_session(fds, sock, args.hide if args.fresh else None)}
        else:
            reply = {"killed": _clean(args.private_tmp)}
        for fd in fds:
            os.close(fd)
        wire.send(sock, reply)


def _fork_session(fds, sock, hide):
    pid = os.fork()
    if pid:
        return pid
    try:
        sock.close()  # the submission must never reach the zygote's socket
        _session(fds[0], fds[1], fds[2:], hide)
    finally:
        os._exit(0)


def _session(request_fd, output, results, hide):
    """Read this student's request, apply the rules, then run its probes. `hide`: None, or the
    paths to hide in namespaces of the session's own."""
    os.setsid()
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    try:
        if hide is not None:
            _fresh_namespaces(hide)
    except OSError as error:
        for fd in results:
            _write(fd, {"failure": f"internal grader error, please report it: the sandbox could not give this "
                                   f"submission namespaces of its own ({error})"})
        return
    with os.fdopen(request_fd, "rb", buffering=0) as stream:
        request, _ = wire.read_frame(stream, REQUEST_CAP)
    if _refused(request, results):
        return
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(output)
    _run_probes(request, results)


def _run_probes(request, results):
    """Run the request's groups of probes (grader.contract.in_turn): each group in a child of its
    own, its probes in turn, the groups side by side (virtual GPUs) or one at a time (real GPUs,
    whose timings must not disturb each other), each probe within its limits; and speak for any
    that ended without its result. A probe that crashes or overruns costs only itself: the rest of
    its group go on in a fresh child."""
    unreported = dict(zip(request["probes"], results))  # the descriptors this session still holds
    pending = [list(group) for group in request["groups"]]
    running = {}
    while pending or running:
        while pending and (not running or request["mode"] == "virtual"):
            child = _Child(request, pending.pop(0), unreported, [fd for c in running.values() for fd in c.fds()])
            running[child.pid] = child
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid in running:
            child = running.pop(pid)
            child.follow(unreported)
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
            if code == REPORTED and child.done == len(child.names):
                child.reported(unreported)
            elif code == AFRESH and child.done and child.afresh:  # (a fresh child's first probe always runs)
                pending[:0] = _nonempty(child.lost(None, unreported))
            else:
                pending[:0] = _nonempty(child.lost(_ending(status, request["descriptions"][child.current]), unreported))
            child.close()
        elif not pid:
            for child in list(running.values()):
                child.follow(unreported)
                failure = child.overrun(request)
                if failure is not None:
                    judged = child.done
                    _kill_group(child.pid)
                    os.waitpid(child.pid, 0)
                    del running[child.pid]
                    child.follow(unreported)  # (the probe judged may have reported meanwhile: then no failure)
                    pending[:0] = _nonempty(child.lost(failure if child.done == judged else None, unreported))
                    child.close()
            wait_for_exits([fd for c in running.values() for fd in c.wakers()], WATCH)


def _nonempty(group):
    return [group] if group else []


class _Child:
    """A child of the session running `names` in turn. After each probe's frame it writes one byte
    to its progress pipe, so the session knows which probe is running: the one whose limits count,
    and the one to speak for if the child ends; and one more before it exits AFRESH, so that an exit
    with that status by the submission's own code is an ending like any other."""

    def __init__(self, request, names, unreported, others):
        self.names, self.done, self.afresh, self.closed = names, 0, False, False
        read, write = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:
            os.close(read)
            mine = {name: unreported[name] for name in names}
            _probes(request, mine, write, [fd for name, fd in unreported.items() if name not in mine] + others)
        os.close(write)
        os.set_blocking(read, False)
        self.progress, self.exited = read, exit_fd(self.pid)
        self.limit, self.backstop = request["seconds"], wall_seconds(request["seconds"])
        self.started = time.monotonic()
        self._next(0.0)

    def wakers(self):
        """What wakes the session for this child: its end, and its progress while it may report."""
        return [self.exited] if self.closed else [self.exited, self.progress]

    def fds(self):
        """The session's descriptors of this child, which no other child may hold."""
        return [fd for fd in (self.progress, self.exited) if fd is not None]

    def close(self):
        for fd in self.fds():
            os.close(fd)

    @property
    def current(self):
        return self.names[min(self.done, len(self.names) - 1)]

    def _next(self, cpu):
        self.cpu, self.deadline = cpu, time.monotonic() + self.backstop

    def follow(self, unreported):
        """Read the child's progress: each probe it reported is off the session's hands."""
        try:
            read = os.read(self.progress, 4096)
        except BlockingIOError:
            return
        ticks = read.count(REPORTED_ONE)
        if read:
            self.afresh = read.endswith(AFRESH_NEXT)
        else:  # the child closed its end: nothing more will come, and the pipe must not wake the session
            self.closed = True
        for name in self.names[self.done:self.done + ticks]:
            os.close(unreported.pop(name))
        self.done = min(len(self.names), self.done + ticks)
        if ticks:
            self._next(_cpu_seconds(self.pid))

    def overrun(self, request):
        """Why the running probe must be stopped (its CPU time, or the wall clock), or None. A child
        as a whole never gets more than its probes' limits together, whatever its progress says."""
        what = request["descriptions"][self.current]
        cpu, count = _cpu_seconds(self.pid), len(self.names)
        if cpu - self.cpu > self.limit or cpu > self.limit * count:
            return (f"{what} did not finish within {self.limit:g} s of CPU time (an endless loop, or far too much "
                    "work?)")
        now = time.monotonic()
        if now > self.deadline + GRACE or now > self.started + count * (self.backstop + GRACE):
            return (f"{what} did not finish within {self.backstop:g} s (waiting or sleeping: nothing the lab needs "
                    "takes so long)")
        return None

    def lost(self, failure, unreported):
        """The probes the child did not report, to run in a fresh child: all of them, or with a
        `failure`, those after the running one, whose result it is."""
        rest = self.names[self.done:]
        if failure is None or not rest:
            return rest
        fd = unreported.pop(rest[0])
        _write(fd, {"failure": failure})
        os.close(fd)
        return rest[1:]

    def reported(self, unreported):
        """The child exited as one that wrote every frame: none is the session's to speak for."""
        for name in self.names:
            if name in unreported:
                os.close(unreported.pop(name))


def _refused(request, results):
    """Whether the static rules refuse the submission, before any of it runs; if so, every probe is
    lost for that one reason. (A request without `allowed` asks for no rules: the sandbox's tests.)"""
    if request["allowed"] is None:
        return False
    refusal = rules.reason(request["source"], frozenset(request["allowed"]))
    for fd in results if refusal is not None else ():
        _write(fd, {"failure": refusal})
    return refusal is not None


def _visible_gpus():
    """How many CUDA GPUs torch sees here: asked in a child, since the zygote must never start CUDA
    itself, or no probe forked from it could use it."""
    import torch

    def count():
        try:
            return torch.cuda.device_count()
        except Exception:  # noqa: BLE001 - a driver that cannot answer: no GPU
            return 0

    try:
        return _in_child(count)() if torch.backends.cuda.is_built() else 0
    except (EOFError, wire.Unreadable):  # the child died in the driver: no GPU it can use
        return 0


def _in_child(func):
    """func()'s JSON-ready result, computed in a child of the zygote, so that nothing it does (CUDA
    started, the virtual runtime installed once) stays in the zygote that every session inherits.
    Returns at once the function that waits for the result: the zygote works on meanwhile."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            wire.write_all(write, wire.pack(func()))
        except BaseException:  # noqa: BLE001 - the grader's own fault: its traceback goes to the zygote's stderr
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    os.close(write)

    def result():
        with os.fdopen(read, "rb") as answer:
            header, _ = wire.read_frame(answer, HANDOVER_CAP)
        os.waitpid(pid, 0)
        return header

    return result


def _cpu_seconds(pid):
    """The CPU time a probe has used, by the kernel's count (no CPU-time rlimit: one would make
    the process's own CPU clock, which virtual GPUs time work by, tick-coarse)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def _fresh_namespaces(hide):
    """IPC and mount namespaces of this session's own, with an empty /tmp and /dev/shm: what the
    student leaves there (files, System V segments) dies with the session, and no later student
    sees it. Each path of `hide` gets an empty file or folder mounted over it."""
    if LIBC.unshare(CLONE_NEWNS | CLONE_NEWIPC) != 0:
        raise OSError(ctypes.get_errno(), "unshare(IPC, mount) failed")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing mounted here propagates back
    for folder in ("/tmp", "/dev/shm"):
        if os.path.isdir(folder):
            _mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, f"size={TMP_BYTES},mode=1777")
    for path in hide:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, "size=4k,mode=0555")
        elif os.path.exists(path):
            _mount("/dev/null", path, None, MS_BIND)


def _mount(source, target, kind, flags, data=None):
    def encode(text):
        return None if text is None else text.encode()

    if LIBC.mount(encode(source), encode(target), encode(kind), flags, encode(data)) != 0:
        raise OSError(ctypes.get_errno(), f"mount {target} failed")


def _ending(status, what):
    """What happened to a child that ended, during `what`, without reporting."""
    if os.WIFSIGNALED(status):
        sig = signal.Signals(os.WTERMSIG(status)).name
        hint = " - out of memory?" if sig == "SIGKILL" else ""
        return f"the grading process crashed during {what} (killed by signal {sig}{hint})"
    return (f"tamper-suspected: your code ended the grading process during {what} (exit status "
            f"{os.WEXITSTATUS(status)}) before it could report; a submission must not exit the process")


def _probes(request, fds, progress, others):
    """A group's child: limits and the student's identity, then each probe of `fds` in turn
    (grader.runner.in_turn; in the runs of grader.runner.probes.chains), its one frame to its
    descriptor and then a byte to `progress`; where the rest need a fresh child it says so there
    too, and exits AFRESH."""
    try:
        for other in others:
            os.close(other)
        _become_student(request)
        import torch

        torch.set_num_threads(request["threads"])  # probes run side by side: one core each
        from grader.runner.in_turn import InTurn  # (imported by the zygote: see main)
        from grader.runner.probes import chains

        in_turn = InTurn(request["memory_bytes"] if request["mode"] == "virtual" else None)
    except BaseException:  # noqa: BLE001 - the grader's fault: every probe of the group says so, plainly
        failure = _internal_error()
        for fd in fds.values():
            _report(fd, failure, progress)
        os._exit(REPORTED)

    def report(name, frame):
        _flush_output()  # what the submission printed reaches the output pipe before its result
        if not _report(fds.pop(name), frame, progress):
            os._exit(1)

    runs = chains(list(fds))
    while runs:
        chain = runs.pop(0)
        failure = _run_chain(in_turn, chain, request, report)
        if failure is None:
            continue
        if failure is AFRESH_NEXT:  # the rest of the group goes on in a fresh child
            _flush_output()
            os.write(progress, AFRESH_NEXT)
            os._exit(AFRESH)
        failed, *rest = [name for name in chain if name in fds]  # the probe running when it failed: the first
        report(failed, failure)  # not reported; the rest go on in runs of their own, as probes alone
        runs[:0] = chains(rest)
    os._exit(REPORTED)


def _run_chain(in_turn, chain, request, report):
    """Run one chain of probes (grader.runner.probes.chains), each reporting its facts: None when
    all did, AFRESH_NEXT when the process is unfit for the next, else the failure frame of the
    probe that was running."""
    from grader.runner.in_turn import Dirty  # (imported by the zygote: see main)
    from grader.runner.loader import StudentError

    try:
        in_turn.run(chain, request["source"], request["path"], request["mode"],
                    lambda name, facts, blobs: report(name, wire.pieces({"facts": facts}, blobs)))
    except Dirty:
        return AFRESH_NEXT
    except StudentError as error:
        return wire.pieces({"failure": str(error)})
    except BaseException:  # noqa: BLE001 - anything else is the grader's fault: say so, plainly
        return _internal_error()
    return None


def _become_student(request):
    """This process as student code may run in it: its own group, limits, no capability, the
    student's identity, no way back."""
    os.setpgid(0, 0)
    _limit(request)
    _drop_bounding_set()
    if request["uid"] is not None:
        os.setgroups([])
        os.setgid(request["uid"])
        os.setuid(request["uid"])
    _drop_capabilities()
    _fresh_keyrings()
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    prctl(PR_SET_DUMPABLE, 0)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _flush_output():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - a closed or replaced stream: its output is lost, not the result
            pass


def _internal_error():
    return wire.pieces({"failure": "internal grader error, please report it:\n" + traceback.format_exc()})


def _report(fd, frame, progress):
    """Write a probe's frame, then tell the session it is written; whether both were."""
    try:
        wire.write_all(fd, *frame)
        os.close(fd)
        os.write(progress, REPORTED_ONE)
        return True
    except OSError:
        return False


def _limit(request):
    """Limits the student's code cannot raise. (Its time limit is the session's to enforce: the
    probe's own CPU time, which a neighbour's load never uses up.)"""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an over-long file write fails; it does not kill
    limits = {resource.RLIMIT_CORE: 0, resource.RLIMIT_FSIZE: request["file_bytes"], resource.RLIMIT_NOFILE: 256}
    if request["processes"] is not None:  # counted for the student's own uid or user namespace
        limits[resource.RLIMIT_NPROC] = request["processes"]
    from grader.runner.in_turn import GROWTH, address_space  # (imported by the zygote: see main)

    limits = {limit: (value, value) for limit, value in limits.items()}
    if request["mode"] == "virtual":  # (real CUDA reserves far more address space than it uses)
        # each probe in turn gets memory_bytes beyond what it starts with (in_turn.InTurn)
        used = address_space()
        limits[resource.RLIMIT_AS] = (used + request["memory_bytes"], used + request["memory_bytes"] + GROWTH)
    for limit, (soft, hard) in limits.items():
        resource.setrlimit(limit, (soft, hard))


def _drop_bounding_set():
    """No capability can come back (before the uid changes: dropping them needs CAP_SETPCAP)."""
    for cap in range(64):
        if LIBC.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == 22:  # EINVAL: no such cap
            break
    LIBC.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)


def _drop_capabilities():
    """No capability left for student code: under unprivileged bubblewrap the sandbox keeps its own
    (to make each student's namespaces), and a uid change does not drop those."""
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = (ctypes.c_uint32 * 6)()  # effective, permitted, inheritable, twice: all empty
    if LIBC.capset(header, data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def _fresh_keyrings():
    """No kernel key an earlier student left: keys live per uid (and user namespace) and outlive
    every process, so the uid's keyrings are emptied and the probe gets a session keyring of its own."""
    if KEYCTL is None:
        raise OSError("the keyctl system call's number on this processor is unknown")
    for keyring in (KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING):
        LIBC.syscall(KEYCTL, KEYCTL_CLEAR, keyring)
    if LIBC.syscall(KEYCTL, KEYCTL_JOIN_SESSION_KEYRING, None) < 0:
        raise OSError(ctypes.get_errno(), "keyctl(JOIN_SESSION_KEYRING) failed")


def _write(fd, header):
    try:
        wire.write_all(fd, wire.pack(header))
    except OSError:
        pass


def _kill_group(pid):
    """Kill the child `pid` and the process group it made: the child itself even where its code
    moved it to another group (the session's own, say), so that waiting for it ends."""
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _reap():
    try:
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass
    except ChildProcessError:
        pass


def _clean(private_tmp):
    """Kill everything below the zygote until nothing is left (a fork bomb included), then empty
    the sandbox's own /tmp and /dev/shm."""
    killed = set()
    for _ in range(1000):
        alive = descendants(os.getpid())
        if not alive:
            break
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except ProcessLookupError:
                pass
        time.sleep(0.002)
        _reap()
    _reap()
    if private_tmp:
        for folder in ("/tmp", "/dev/shm"):
            for entry in os.scandir(folder):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    os.unlink(entry.path)
    return len(killed)
