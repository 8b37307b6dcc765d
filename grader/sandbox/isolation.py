"""How student code is isolated, detected once per run and recorded in every grade.

* `bwrap`: bubblewrap is on PATH and can create namespaces here. The zygote runs in new pid, ipc,
  net, uts and mount namespaces: a root file system of read-only system and Python folders and
  the grader package alone (no answer key, no other submission, no results), a private /tmp and
  /dev/shm, no network, and it dies with the grader. As root, student code also gets a uid of
  its own.
* `uid`: root without bubblewrap (a Docker container, Gradescope): student code runs under a uid
  of its own (claimed, so no other grading run on the machine uses it) with no capabilities;
  folders holding secrets are closed to other users.
* `none`: neither. Fine for a student grading their own code; a batch refuses it unless told
  `--no-isolation`.
"""
import dataclasses
import fcntl
import functools
import glob
import os
import pathlib
import shutil
import subprocess
import sys

from grader import ROOT, heap
from grader.sandbox.cgroups import SlotGroup

PACKAGE = ROOT / "grader"
# What of the package the sandbox runs: the runtime, the probes and what they import. The rest (the
# grader's references, checks, rubric, reports, applications) does not exist there.
SANDBOX_PART = frozenset({"__init__.py", "bounded.py", "contract.py", "costs.py", "devices.py", "facts.py", "heap.py",
                          "inputs.py", "patching.py", "procs.py", "rules.py", "trace.py", "wire.py", "runner",
                          "virtual", "__pycache__"})
# The project's folders no sandbox may show, whatever binds them: the solutions and the tests' corpus.
SECRETS = (ROOT / "solutions", ROOT / "tests")
KINDS = ("auto", "bwrap", "uid", "none")
UID_BASE = 61000  # student code runs as a uid claimed from UID_BASE .. UID_BASE + UID_COUNT - 1 (root only)
UID_COUNT = 1000
LOCKS = "/run/mp-lab-grader"  # root's own: one lock file per claimed uid
TMP_BYTES = 64 * 2**20  # size of the sandbox's /tmp and /dev/shm


class IsolationError(Exception):
    """The isolation asked for is not available here; the message says how to get it."""


@dataclasses.dataclass(frozen=True)
class Isolation:
    kind: str  # "bwrap", "uid" or "none"
    root: bool  # whether the grader runs as root (then student code gets a uid of its own)
    uid_base: int = UID_BASE
    cgroups: bool = False  # each worker slot runs in cgroups of its own (grader.sandbox.cgroups)

    def slot_group(self, name, memory_bytes, processes):
        """The cgroups of the slot `name`, or None when this isolation has none."""
        return SlotGroup.make(name, memory_bytes, processes) if self.cgroups else None

    def claim_uid(self):
        """(uid, lock) of a uid no other grading run on this machine uses, or (None, None) when not
        root. The uid is this caller's for as long as the lock descriptor stays open, so two
        batches, or a batch and a single run, never share one."""
        if not self.root or self.kind == "none":
            return None, None
        os.makedirs(LOCKS, mode=0o700, exist_ok=True)
        for uid in range(self.uid_base, self.uid_base + UID_COUNT):
            lock = os.open(os.path.join(LOCKS, f"{uid}.lock"), os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return uid, lock
            except BlockingIOError:
                os.close(lock)
        raise IsolationError(f"every uid from {self.uid_base} to {self.uid_base + UID_COUNT - 1} is in use")

    def describe(self):
        text = {
            "bwrap": "bubblewrap namespaces, fresh for each student" + (", a uid of its own" if self.root
                                                                       else ", the grader's uid"),
            "uid": "a uid of its own, fresh IPC and mount namespaces for each student",
            "none": "none: student code runs as the grader's own user",
        }[self.kind]
        return text + (", a cgroup per slot (an equal CPU share, a memory cap)" if self.cgroups else "")


def detect(asked="auto", uid_base=UID_BASE):
    """The isolation to use: the strongest available for "auto"; IsolationError when the one
    asked for is not available."""
    root = os.geteuid() == 0
    bwrap_ok = _bwrap_options(root) is not None
    if asked == "auto":
        asked = "bwrap" if bwrap_ok else "uid" if root else "none"
    if asked == "bwrap" and not bwrap_ok:
        raise IsolationError("bubblewrap cannot create namespaces here: install it (apt-get install bubblewrap) "
                             "and allow unprivileged user namespaces, or run as root for --isolation uid")
    if asked == "uid" and not root:
        raise IsolationError("--isolation uid needs root (to give student code a uid of its own)")
    return Isolation(asked, root, uid_base, asked != "none" and _cgroups_work())


@functools.cache
def _cgroups_work():
    """Whether this machine lets the grader make a slot's cgroups (tried once, then removed)."""
    group = SlotGroup.make(f"probe-{os.getpid()}", 2**30, 64)
    if group is None:
        return False
    group.remove()
    return True


@functools.cache
def _bwrap_options(root):
    """(namespace options, whether tmpfs sizes work) of the newest option set this machine's
    bubblewrap accepts (--disable-userns and --size are recent), or None if none works."""
    if shutil.which("bwrap") is None:
        return None
    common = ["--unshare-pid", "--unshare-ipc", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
              "--die-with-parent", "--new-session"]
    # As root, no user namespace: the zygote keeps the power to give children a uid of their own.
    # Either way it keeps its capabilities (unprivileged: within its own user namespace), to give
    # each student namespaces of its own; the probes drop them all before running student code.
    user = [[]] if root else [["--unshare-user", "--disable-userns"], ["--unshare-user"]]
    for namespaces in (common + extra + ["--cap-add", "ALL"] for extra in user):
        for sized in (True, False):
            tmp = (["--size", "1048576"] if sized else []) + ["--tmpfs", "/tmp"]
            command = ["bwrap", *namespaces, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", *tmp, "true"]
            try:
                if subprocess.run(command, capture_output=True, timeout=20).returncode == 0:
                    return namespaces, sized
            except (OSError, subprocess.SubprocessError):
                return None
    return None


def judge_side():
    """The package's files and folders the sandbox must not hold (see SANDBOX_PART)."""
    return sorted(str(path) for path in PACKAGE.iterdir() if path.name not in SANDBOX_PART)


def zygote_command(isolation, socket_fd, allowed, preload=(), hidden=(), shared=True):
    """The argv that starts the zygote under `isolation`: `allowed`, the modules a submission may
    import, and `preload`, more modules to import before any session. `hidden`: paths that must not
    exist in the sandbox even where a bound folder holds them (the answer key, the submissions,
    results); the judge's side of the package never does either. `shared`: whether this zygote
    computes the facts every grading shares (else another sandbox does)."""
    python = [sys.executable, "-B", "-s", "-m", "grader.runner", "--socket-fd", str(socket_fd),
              "--allowed", ",".join(sorted(allowed)), "--preload", ",".join(sorted(preload)),
              *([] if shared else ["--no-shared"])]
    if isolation.kind == "uid":  # each session hides them in a mount namespace of its own
        paths = [p for p in map(os.path.realpath, hidden) if os.path.exists(p)] + judge_side()
        return python + ["--fresh", *[a for p in paths for a in ("--hide", p)]]
    if isolation.kind != "bwrap":
        return python
    namespaces, sized = _bwrap_options(isolation.root)
    args = ["bwrap", *namespaces, "--perms", "0755", "--tmpfs", "/"]
    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/sys"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    args += ["--proc", "/proc", "--dev", "/dev"]
    for folder in ("/tmp", "/dev/shm"):
        args += ["--perms", "1777", *(["--size", str(TMP_BYTES)] if sized else []), "--tmpfs", folder]
    for device in sorted(glob.glob("/dev/nvidia*")):  # real mode's GPUs (none on most machines)
        args += ["--dev-bind", device, device]
    args += _bound_folders(hidden)
    env = {"PATH": "/usr/bin:/bin", "TMPDIR": "/tmp", "LANG": "C.UTF-8", **_python_environment(str(ROOT))}
    env.update({k: v for k, v in os.environ.items() if k.startswith(("CUDA_", "NVIDIA_"))})
    args += ["--clearenv", *[a for k, v in env.items() for a in ("--setenv", k, v)], "--chdir", "/tmp"]
    return args + python + ["--private-tmp", "--fresh"]


def _bound_folders(hidden):
    """bwrap options that bind Python's folders and the package's sandbox part, read-only, and
    put an empty file or folder over each `hidden` path a bound folder holds (elsewhere it is
    absent anyway) and over the package's judge side."""
    def cover(path):
        return ["--tmpfs", path] if os.path.isdir(path) else ["--ro-bind", "/dev/null", path]

    args, made, bound = [], set(), ["/usr", "/etc", "/sys"]
    for path in sorted(_python_folders() | {str(PACKAGE)}):
        if not any(path == p or path.startswith(p + os.sep) for p in ("/usr", "/etc", "/sys")):
            args += _folders_above(path, made) + ["--ro-bind", path, path]
            bound.append(path)
    for path in map(os.path.realpath, hidden):
        if any(path.startswith(p + os.sep) for p in bound):
            args += cover(path)
    args += ["--ro-bind", str(PACKAGE), str(PACKAGE)]  # again, in case a hidden folder held it
    return args + [a for path in judge_side() for a in cover(path)]


def environment():
    """The environment of an unwrapped zygote: nothing of the grader's but what Python needs."""
    keep = ("PATH", "LANG", "LC_ALL", "CUDA_VISIBLE_DEVICES", "CUDA_HOME", "LD_LIBRARY_PATH")
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return {**{k: v for k, v in os.environ.items() if k in keep}, **_python_environment(path)}


def _python_environment(path):
    """What the zygote's interpreter needs: the grader on its path, no bytecode written, a home in
    /tmp, and its malloc's huge pages (grader.heap)."""
    return {"PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1", "HOME": "/tmp", **heap.TUNABLES}


def _python_folders():
    """The interpreter's own folders and its package folders (site-packages), never a script's
    folder, the current folder or the project: those may hold anything."""
    prefixes = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    prefixes.add(os.path.dirname(os.path.realpath(sys.executable)))
    packages = {os.path.realpath(p) for p in sys.path if p and os.path.isdir(p)
                and os.path.basename(p) in ("site-packages", "dist-packages")}
    project = str(ROOT)
    def inside(path):  # the project's folder, a folder within it, or one that holds it
        return path == project or path.startswith(project + os.sep) or project.startswith(path + os.sep)

    folders = prefixes | {p for p in packages if not inside(p)}
    folders = {p for p in folders if p not in ("/", "/tmp", "/dev", "/proc")}
    # Keep the outermost of nested folders.
    return {p for p in folders if not any(p != q and p.startswith(q + os.sep) for q in folders)}


def _folders_above(path, made):
    """bwrap options that create `path`'s parents, traversable by any user (its own /root is 0700)."""
    args, current = [], ""
    for part in pathlib.PurePath(path).parts[1:-1]:
        current += "/" + part
        if current not in made:
            made.add(current)
            args += ["--perms", "0755", "--dir", current]
    return args
