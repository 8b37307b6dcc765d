"""The zygote: import torch and the runtime once, then, per submission, fork a session that runs
its probes, and clean up after it.

Requests come over the socket the grader passed (`--socket-fd`) as `grader.wire` frames:
  {"op": "grade", ...} with descriptors [output, result_1, ..., result_n]: fork a session whose
      probe children each write one frame to their result descriptor; reply {"session": pid}.
  {"op": "clean"}: kill every process the submission left, wipe the private /tmp and /dev/shm;
      reply {"killed": n}.
The zygote is a subreaper, so a process the submission double-forks or `setsid`s away is still
its descendant, and it is not dumpable, so a process of the same user cannot read or trace it.
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

from grader import wire
from grader.procs import descendants

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 36, 38
REQUEST_CAP = 1 << 20  # a request carries the submission's text (capped at 256 KiB by the grader)
GRACE = 1.0  # seconds between a probe's deadline and its kill
LIBC = ctypes.CDLL(None, use_errno=True)


def prctl(option, value):
    if LIBC.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m grader.runner", description=__doc__.splitlines()[0])
    parser.add_argument("--socket-fd", type=int, required=True, help="the grader's end of the request socket")
    parser.add_argument("--preload", default="", help="comma-separated modules to import before forking: those "
                        "the submission may import, and torch._dynamo, which every optimizer step imports")
    parser.add_argument("--private-tmp", action="store_true", help="/tmp and /dev/shm are this sandbox's own")
    args = parser.parse_args(argv)
    sock = socket.socket(fileno=args.socket_fd)
    for name in filter(None, args.preload.split(",")):  # a student's identity may not read them later
        importlib.import_module(name)
    import torch.optim  # noqa: F401 - preloaded: every probe that takes an optimizer step needs it

    from grader.runner import probes  # noqa: F401 - the runtime, the probes and what they import

    # What is preloaded lives for ever: a collection in a probe must not walk it (its first full one
    # would touch every page the fork shares, milliseconds of CPU time that virtual GPUs' clocks
    # count, inside whatever the submission is timing).
    gc.collect()
    gc.freeze()

    prctl(PR_SET_CHILD_SUBREAPER, 1)
    prctl(PR_SET_DUMPABLE, 0)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    wire.send(sock, {"ready": os.getpid()})
    while True:
        try:
            request, fds = wire.receive(sock, REQUEST_CAP)
        except (EOFError, OSError, wire.Unreadable):
            return 0
        _reap()
        if request["op"] == "grade":
            reply = {"session": _fork_session(request, fds, sock)}
        else:
            reply = {"killed": _clean(args.private_tmp)}
        for fd in fds:
            os.close(fd)
        wire.send(sock, reply)


def _fork_session(request, fds, sock):
    pid = os.fork()
    if pid:
        return pid
    try:
        sock.close()  # the submission must never reach the zygote's socket
        _session(request, fds[0], fds[1:])
    finally:
        os._exit(0)


def _session(request, output, results):
    """Run the probes, side by side (virtual GPUs) or one at a time (real GPUs, whose timings
    must not disturb each other), and speak for any that ended without its result."""
    os.setsid()
    prctl(PR_SET_CHILD_SUBREAPER, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(output)
    pending = list(zip(request["probes"], results))
    running = {}
    while pending or running:
        while pending and (not running or request["mode"] == "virtual"):
            name, fd = pending.pop(0)
            pid = os.fork()
            if pid == 0:
                _probe(request, name, fd, [f for _, f in pending] + [f for _, f, _ in running.values()])
            running[pid] = (name, fd, time.monotonic() + request["seconds"])
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid in running:
            name, fd, _ = running.pop(pid)
            _speak_for(fd, name, status, request)
        elif not pid:
            for pid, (name, fd, deadline) in list(running.items()):
                if time.monotonic() > deadline + GRACE:
                    _kill_group(pid)
                    os.waitpid(pid, 0)
                    del running[pid]
                    _write(fd, {"failure": f"{request['descriptions'][name]} did not finish within "
                                           f"{request['seconds']:g} s (an endless loop, or far too much work?)"})
            time.sleep(0.005)


def _speak_for(fd, name, status, request):
    """A probe that exited 0 wrote its own frame; for any other ending, write what happened."""
    what = request["descriptions"][name]
    if os.WIFSIGNALED(status):
        sig = signal.Signals(os.WTERMSIG(status)).name
        hint = " - out of memory?" if sig == "SIGKILL" else ""
        _write(fd, {"failure": f"the grading process crashed during {what} (killed by signal {sig}{hint})"})
    elif os.WEXITSTATUS(status):
        _write(fd, {"failure": f"tamper-suspected: your code ended the grading process during {what} "
                               f"(exit status {os.WEXITSTATUS(status)}); a submission must not exit the process"})
    os.close(fd)


def _probe(request, name, fd, others):
    """A probe's child: limits, the student's identity, then the probe; its one frame to `fd`."""
    try:
        for other in others:
            os.close(other)
        os.setpgid(0, 0)
        _limit(request)
        if request["uid"] is not None:
            os.setgroups([])
            os.setgid(request["uid"])
            os.setuid(request["uid"])
        prctl(PR_SET_NO_NEW_PRIVS, 1)
        prctl(PR_SET_DUMPABLE, 0)
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        import torch

        torch.set_num_threads(request["threads"])  # probes run side by side: one core each
        from grader.runner import probes
        from grader.runner.loader import StudentError

        try:
            facts, blobs = probes.run(name, request["source"], request["path"], request["mode"])
            frame = wire.pack({"facts": facts}, blobs)
        except StudentError as error:
            frame = wire.pack({"failure": str(error)})
    except BaseException:  # noqa: BLE001 - anything else is the grader's fault: say so, plainly
        frame = wire.pack({"failure": "internal grader error, please report it:\n" + traceback.format_exc()})
    for stream in (sys.stdout, sys.stderr):  # what the submission printed reaches the output pipe first
        try:
            stream.flush()
        except Exception:  # noqa: BLE001 - a closed or replaced stream: its output is lost, not the result
            pass
    try:
        _write_all(fd, frame)
    finally:
        os._exit(0)


def _limit(request):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an over-long file write fails; it does not kill
    limits = {resource.RLIMIT_CORE: 0, resource.RLIMIT_FSIZE: request["file_bytes"], resource.RLIMIT_NOFILE: 256}
    if request["processes"] is not None:  # counted for the student's own uid or user namespace
        limits[resource.RLIMIT_NPROC] = request["processes"]
    if request["mode"] == "virtual":  # (real CUDA reserves far more address space than it uses)
        with open("/proc/self/statm") as statm:
            used = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        limits[resource.RLIMIT_AS] = used + request["memory_bytes"]
    for limit, value in limits.items():
        resource.setrlimit(limit, (value, value))


def _write(fd, header):
    try:
        _write_all(fd, wire.pack(header))
    except OSError:
        pass


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
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
