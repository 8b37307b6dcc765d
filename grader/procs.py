"""The live processes this process can see, read from /proc, and waiting for children to end. Both
sides use it: the zygote to find what a submission left below it and to follow its probes, the
grader to sweep a student's uid and to follow its workers."""
import dataclasses
import os
import select
import time

POLL = 0.01  # seconds between looks at a child that no descriptor tells of


@dataclasses.dataclass(frozen=True)
class Process:
    pid: int
    ppid: int
    uid: int


def live():
    """Every process that has not exited (zombies, which only wait to be reaped, are left out)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            uid = os.stat(f"/proc/{entry}").st_uid
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()  # after the command, which may hold spaces
        except OSError:
            continue
        if fields[0] != "Z":
            yield Process(int(entry), int(fields[1]), uid)


def descendants(root):
    """The pids of every live process below `root`."""
    children = {}
    for process in live():
        children.setdefault(process.ppid, []).append(process.pid)
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def of_uid(uid):
    """The pids of every live process of `uid`."""
    return [process.pid for process in live() if process.uid == uid]


def exit_fd(pid):
    """A descriptor that turns readable when the child `pid` exits, for a wait that wakes at once
    (select); None where the kernel offers none (Linux before 5.3): then the waiter polls."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def wait_for_exits(fds, poll):
    """Sleep until one of `fds` (exit_fd's; None among them: that child is polled) turns readable,
    or `poll` seconds pass."""
    ready = [fd for fd in fds if fd is not None]
    if ready and len(ready) == len(fds):
        select.select(ready, [], [], poll)
    else:
        time.sleep(min(poll, POLL))


def usable_cores():
    """The CPUs this process may run on (its affinity, where the system has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
