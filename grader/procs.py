"""The live processes this process can see, read from /proc. Both sides use it: the zygote to find
what a submission left below it, the grader to sweep a student's uid."""
import dataclasses
import os


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
