"""The static rules: what a submission may write, checked on its syntax tree, by the trusted side,
before any of it runs.

These rules raise the bar; they are not the trust boundary (the sandbox is). They are an
allowlist of the lab's needs: the modules rubric.yaml allows, attribute access that stays on the
public surface of those modules and of the student's own objects (`self._x` is theirs), and no
builtin that reaches the interpreter itself. Each refusal names its line and says what to do. An
honest mistake (an unused `import numpy`) is worded neutrally; only constructs that reach past
the contract (the interpreter, files, processes, the grader) are called tamper-suspected.
"""
import ast
import importlib
import types

from grader.contract import TAMPER
from grader.sandbox import files

# Builtins that reach the interpreter, files or the terminal: the lab needs none of them.
FORBIDDEN_BUILTINS = frozenset({
    "__import__", "exec", "eval", "compile", "open", "input", "breakpoint", "help", "globals", "locals", "vars",
    "getattr", "setattr", "delattr", "memoryview", "__builtins__", "__loader__", "__spec__", "__build_class__",
})
DUNDERS_ALLOWED = frozenset({"__init__", "__name__"})  # super().__init__(), the demo's __main__ guard
# Attributes of frames, tracebacks, generators and code objects: the way to another module's globals.
FRAME_ATTRIBUTES = frozenset({
    "tb_frame", "tb_next", "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "f_trace", "gi_frame",
    "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "ag_frame", "ag_code", "co_code", "co_consts",
})
# Modules that give power over processes, files or the interpreter, as attribute names: many allowed
# modules hold them (torch.os, dataclasses.sys, typing.operator...). None is a tensor or module
# method (select and numpy are, and stay legal).
POWERFUL_MODULES = frozenset({
    "os", "sys", "subprocess", "builtins", "importlib", "ctypes", "shutil", "socket", "signal", "multiprocessing",
    "gc", "inspect", "operator", "io", "pathlib", "pickle", "marshal", "types", "threading", "_thread", "runpy",
    "pty", "posix", "resource", "tempfile", "mmap", "fcntl", "json", "pdb", "code", "codeop", "traceback",
    "linecache", "tokenize", "zipimport", "pkgutil", "site", "sysconfig", "glob", "selectors", "asyncio",
    "concurrent", "urllib", "http", "ssl", "logging", "warnings", "copyreg", "dis", "ast", "weakref", "yaml",
    "pytest", "grader", "solutions", "shelve", "dbm", "sqlite3", "zipfile", "tarfile", "gzip", "bz2",
    "lzma", "webbrowser", "platform", "atexit", "faulthandler", "tracemalloc", "pydoc", "imp",
})
# Torch's entry points that read or write files, compile or run code, or start processes.
TORCH_DENIED = frozenset({
    "load", "save", "from_file", "hub", "cpp_extension", "fx", "jit", "package", "library", "multiprocessing",
    "ops", "classes", "compile", "compiler", "overrides", "serialization", "onnx", "distributed", "export",
    "profiler", "tensorboard", "utils", "tofile", "export_chrome_trace", "export_stacks", "export_memory_timeline",
})
TORCH_DENIED_ANYWHERE = TORCH_DENIED - {"utils"}  # nn.utils is harmless; torch.utils is checked by resolution


class Refusal(Exception):
    """A construct the rules refuse: its line, and the student-facing reason."""

    def __init__(self, line, reason, tamper):
        super().__init__(line, reason, tamper)
        self.line, self.reason, self.tamper = line, reason, tamper

    def __str__(self):
        prefix = f"{TAMPER}: " if self.tamper else ""
        return f"{prefix}line {self.line} {self.reason}"


class Unusable(Exception):
    """A submission that cannot run at all; the message is the student's reason."""


def read_checked(path, allowed_imports, within=None):
    """The text of the submission file `path`, read safely (grader.sandbox.files) and accepted by
    the rules; Unusable, with the student's reason, otherwise."""
    try:
        source = files.read_text(path, files.MODEL_CAP, "the submission", within)
        check(source, allowed_imports)
    except files.InvalidFile as error:
        raise Unusable(f"cannot read the submission: {error}") from None
    except SyntaxError as error:
        raise Unusable(f"your submission does not compile: {error.msg} (line {error.lineno})") from None
    except (ValueError, RecursionError, MemoryError) as error:  # the parser's own limits
        raise Unusable(f"your submission cannot be parsed ({type(error).__name__}): simplify its expressions") from None
    except Refusal as refusal:
        raise Unusable(str(refusal)) from None
    return source


def check(source, allowed_imports):
    """Raise the first Refusal of the submission `source`; SyntaxError is the loader's to report."""
    tree = ast.parse(source)
    checker = _Checker(frozenset(allowed_imports))
    for node in tree.body:
        if not _is_main_block(node):  # the demo block never runs under the grader
            checker.visit(node)


def _is_main_block(node):
    """`if __name__ == "__main__":` at the top level."""
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators))


class _Checker(ast.NodeVisitor):
    def __init__(self, allowed):
        self.allowed = allowed
        self.aliases = {}  # name bound by an import -> the module or object it names

    def refuse(self, node, reason, tamper=True):
        raise Refusal(getattr(node, "lineno", 0), reason, tamper)

    # -- imports ---------------------------------------------------------------------------------
    def visit_Import(self, node):
        for alias in node.names:
            module = self.module(node, alias.name)
            root = alias.name.split(".")[0]
            self.aliases[alias.asname or root] = module if alias.asname else self.module(node, root)

    def visit_ImportFrom(self, node):
        if node.level:
            self.refuse(node, "uses a relative import; the submission is a single file")
        module = self.module(node, node.module or "")
        for alias in node.names:
            if alias.name == "*":
                self.refuse(node, f"imports * from {node.module}; import the names you use", tamper=False)
            if alias.name.startswith("_") and alias.name != "__future__":
                self.refuse(node, f"imports {alias.name} from {node.module}, a private name of that module")
            if node.module.split(".")[0] == "torch" and alias.name in TORCH_DENIED:
                self.refuse(node, f"imports torch's {alias.name}, which reads or writes files or runs code")
            value = getattr(module, alias.name, None) if module is not None else None
            self.judge_value(node, value, f"{node.module}.{alias.name}")
            self.aliases[alias.asname or alias.name] = value

    def module(self, node, name):
        """The allowed module `name`, imported here (the trusted side) to resolve what it holds."""
        parts = name.split(".")
        if parts[0] not in self.allowed:
            tamper = parts[0] in POWERFUL_MODULES
            reason = (f"imports {name}, which reaches past the lab (the interpreter, files or the grader)" if tamper
                      else f"imports {name}, which this lab does not allow; remove it "
                           f"(allowed: {', '.join(sorted(self.allowed))})")
            self.refuse(node, reason, tamper)
        if any(p.startswith("_") for p in parts[1:]) or (parts[0] == "torch" and set(parts[1:]) & TORCH_DENIED):
            self.refuse(node, f"imports {name}, a part of torch that reads or writes files or runs code")
        try:
            return importlib.import_module(name)
        except ImportError:
            return None  # the runner will say it does not exist

    def judge_value(self, node, value, where):
        """Refuse a name that resolves to a module outside the allowlist (torch.os, typing.operator)."""
        if isinstance(value, types.ModuleType):
            parts = value.__name__.split(".")
            if parts[0] not in self.allowed or (parts[0] == "torch" and (set(parts[1:]) & TORCH_DENIED)):
                self.refuse(node, f"reaches the module {value.__name__} through {where}")

    # -- names and attributes --------------------------------------------------------------------
    def visit_Name(self, node):
        if node.id in FORBIDDEN_BUILTINS or (node.id.startswith("__") and node.id not in DUNDERS_ALLOWED):
            self.refuse(node, f"uses {node.id}, which reaches the interpreter; the lab never needs it")

    def visit_Attribute(self, node):
        name = node.attr
        if name.startswith("__") and name.endswith("__") and name not in DUNDERS_ALLOWED:
            self.refuse(node, f"uses .{name}, which reaches past the lab's contract")
        if name.startswith("_") and name not in DUNDERS_ALLOWED and not (isinstance(node.value, ast.Name)
                                                                         and node.value.id == "self"):
            self.refuse(node, f"uses .{name}, a private attribute of something that is not yours (only self._x is)")
        if name in FRAME_ATTRIBUTES:
            self.refuse(node, f"uses .{name}, which reaches the interpreter's frames")
        if name in POWERFUL_MODULES or name in TORCH_DENIED_ANYWHERE:
            self.refuse(node, f"uses .{name}, which reaches files, processes or the interpreter")
        self.resolve(node)
        self.generic_visit(node)

    def resolve(self, node):
        """Follow `alias.a.b` through the real modules, refusing a step into a module the rules deny."""
        chain, base = [], node
        while isinstance(base, ast.Attribute):
            chain.insert(0, base.attr)
            base = base.value
        if not isinstance(base, ast.Name) or base.id not in self.aliases:
            return
        value, where = self.aliases[base.id], base.id
        for attr in chain:
            if value is None:
                return
            value, where = getattr(value, attr, None), f"{where}.{attr}"
            self.judge_value(node, value, where)
