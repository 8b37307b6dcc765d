"""A control group per worker slot, where the machine lets the grader make one (root, and a
writable cgroup hierarchy, v1 or v2): the slot's CPU share is one slot's whatever number of
processes its student starts, so a student cannot starve the classmate graded beside it; and its
memory and process count are capped, so a student cannot take the machine's memory from the rest
of the batch. Without one, the probes' own limits (CPU time, address space, processes) still hold.
"""
import os
import pathlib
import signal

CONTROLLERS = ("cpu", "memory", "pids")
PREFIX = "mp-lab-grader-"


def _hierarchies():
    """[(the controllers it offers of CONTROLLERS, this process's own group folder, is v2)] of each
    mounted cgroup hierarchy (v1: one per controller or so; v2: one for all)."""
    mounts = []  # (controllers or None for v2, mount root, mount point)
    for line in pathlib.Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        kind = fields[fields.index("-") + 1]
        if kind in ("cgroup", "cgroup2"):
            offered = [c for c in CONTROLLERS if c in fields[-1].split(",")] if kind == "cgroup" else None
            mounts.append((offered, fields[3], fields[4]))
    found = []
    for line in pathlib.Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        for offered, root, point in mounts:
            if (offered is None) == (names == "") and (offered is None or set(offered) & set(names.split(","))):
                folder = pathlib.Path(point) / os.path.relpath(path, root)
                if offered is None:
                    listed = _read(folder / "cgroup.controllers").split()
                    offered = [c for c in CONTROLLERS if c in listed]
                if offered:
                    found.append((offered, folder, names == ""))
                break
    return found


class SlotGroup:
    """The cgroups (one per hierarchy) a worker slot's sandbox runs in."""

    def __init__(self, folders, memory_bytes):
        self.folders, self.memory_bytes = folders, memory_bytes

    @classmethod
    def make(cls, name, memory_bytes, processes):
        """The slot's groups, or None where none can be made here (not root, or no writable
        hierarchy offering a CPU share)."""
        if os.geteuid() != 0:
            return None
        made, controllers = [], set()
        try:
            for offered, own, v2 in _hierarchies():
                if v2 and controllers:  # a v1 hierarchy already holds them (a hybrid machine)
                    offered = [c for c in offered if c not in controllers]
                    if not offered:
                        continue
                if v2:
                    (own / "cgroup.subtree_control").write_text(" ".join(f"+{c}" for c in offered))
                folder = own / f"{PREFIX}{name}"
                folder.mkdir(exist_ok=True)
                made.append(folder)
                for controller in offered:
                    _limit(controller, folder, v2, memory_bytes, processes)
                controllers.update(offered)
        except OSError:
            controllers.clear()
        if "cpu" not in controllers:
            for folder in made:
                _remove(folder)
            return None
        return cls(made, memory_bytes)

    def wrap(self, command):
        """`command`, started by a shell that first moves itself into the slot's groups."""
        script = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 97; shift; done; shift; exec "$@"'
        return ["/bin/sh", "-c", script, "sh", *[str(f / "cgroup.procs") for f in self.folders], "--", *command]

    def kill(self):
        """Kill every process still in the slot's groups, until none is left."""
        for _ in range(100):
            pids = {int(p) for f in self.folders for p in _read(f / "cgroup.procs").split()}
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def remove(self):
        self.kill()
        for folder in self.folders:
            _remove(folder)


def _limit(controller, folder, is_v2, memory_bytes, processes):
    if controller == "memory":
        (folder / ("memory.max" if is_v2 else "memory.limit_in_bytes")).write_text(str(memory_bytes))
        if is_v2 and (folder / "memory.swap.max").exists():
            (folder / "memory.swap.max").write_text("0")
    elif controller == "pids":
        (folder / "pids.max").write_text(str(processes))


def _read(path):
    try:
        return path.read_text()
    except OSError:
        return ""


def _remove(folder):
    for _ in range(50):
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # its last processes are still exiting
            os.sched_yield()
