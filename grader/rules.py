"""The static rules: what a submission may write, checked on its syntax tree before any of it runs:
in the sandbox's session, forked from the zygote before any student's code, where torch's real
modules (which the rules read their names from) are already imported; the trusted side never
imports torch.

These rules raise the bar; they are not the trust boundary (the sandbox is). They say what is
allowed, not what is not: the modules rubric.yaml allows; attribute names from torch's public API,
the allowed modules' public names, the methods of Python's built-in types and the names the file
itself defines (`self._x` where the file sets it), less those that reach the interpreter, files,
processes or attributes by string; and no builtin that reaches the interpreter itself. Each
refusal names its line and says what to do. An honest mistake (an unused `import numpy`, an
attribute the lab does not use) is worded neutrally; only constructs that reach past the contract
(the interpreter, files, processes, the grader) are called tamper-suspected.
"""
import ast
import functools
import importlib
import inspect
import string
import types
import warnings

from grader.contract import TAMPER

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
OWNED = {"utils": "torch.nn"}  # names allowed only read off that module (`[torch][0].utils` is torch.utils)
# The allowed modules' ways to read or write an attribute named by a string, or to evaluate text.
GADGETS = frozenset({
    "update_wrapper", "wraps", "WRAPPER_ASSIGNMENTS", "WRAPPER_UPDATES", "singledispatch", "singledispatchmethod",
    "get_type_hints", "ForwardRef", "attrgetter", "methodcaller", "itemgetter", "cell_contents", "format_map",
    "make_dataclass",  # a class from a namespace the rules never see (its special methods)
})
DENIED_ATTRIBUTES = FRAME_ATTRIBUTES | POWERFUL_MODULES | TORCH_DENIED_ANYWHERE | GADGETS
# Instance attributes torch documents that no class of a CPU build declares.
DOCUMENTED = frozenset("""param_groups state defaults last_epoch base_lrs optimizer training device device_index
    device_type cuda_stream stream_id priority event_id cuda_event name major minor total_memory multi_processor_count
    is_integrated is_multi_gpu_board L2_cache_size max_threads_per_multi_processor warp_size regs_per_multiprocessor
    uuid saved_tensors needs_input_grad grad_fn requires_grad is_leaf""".split())
BUILTIN_TYPES = (object, type, str, bytes, bytearray, int, float, complex, bool, list, tuple, dict, set, frozenset,
                 range, slice, BaseException, property, classmethod, staticmethod, super, enumerate, zip, map, filter,
                 reversed)
# Special methods a submission may define: none is called by the grader's machinery on its behalf.
DUNDER_DEFINITIONS = frozenset({"__init__", "__repr__", "__str__", "__len__", "__iter__", "__next__", "__getitem__",
                                "__contains__", "__enter__", "__exit__", "__call__", "__post_init__"})


class Refusal(Exception):
    """A construct the rules refuse: its line, and the student-facing reason."""

    def __init__(self, line, reason, tamper):
        super().__init__(line, reason, tamper)
        self.line, self.reason, self.tamper = line, reason, tamper

    def __str__(self):
        prefix = f"{TAMPER}: " if self.tamper else ""
        return f"{prefix}line {self.line} {self.reason}"


def reason(source, allowed_imports):
    """Why the submission `source` cannot run, in the student's words, or None when the rules accept it."""
    try:
        check(source, allowed_imports)
    except SyntaxError as error:
        return f"your submission does not compile: {error.msg} (line {error.lineno})"
    except (ValueError, RecursionError, MemoryError) as error:  # the parser's own limits
        return f"your submission cannot be parsed ({type(error).__name__}): simplify its expressions"
    except Refusal as refusal:
        return str(refusal)
    return None


def check(source, allowed_imports):
    """Raise the first Refusal of the submission `source`; SyntaxError is the loader's to report."""
    tree = ast.parse(source)
    body = [node for node in tree.body if not _is_main_block(node)]  # the demo block never runs here
    checker = _Checker(frozenset(allowed_imports), body)
    for node in body:
        checker.visit(node)


@functools.cache
def vocabulary(allowed_imports):
    """(public, private, foreign) attribute names of the lab's surface. Public: torch's API (each
    module's `__all__`, or the names it defines itself; its classes' attributes, annotations and
    constructor arguments), the allowed modules' public names and their classes', the methods of
    Python's built-in types, less the denied ones. Private: the `_x` names on that surface that
    hold a module or something from outside it, which a submission's own `self._x` may not
    borrow (`self._sys` read off a module). Foreign:
    the names of the modules outside the lab that hang off it (`dataclasses.re`), and their
    attributes: a name the file defines opens none of them (`enum = None` then `x.re.enum`).
    Read from the real modules (in the zygote, before any submission), never from the virtual
    runtime's stand-ins."""
    public, private, seen, walked = set(DOCUMENTED), set(), {}, set()
    for kind in BUILTIN_TYPES:
        _names_of(kind, public, private, walked)
    with warnings.catch_warnings():  # deprecated attributes warn when read: not the student's doing
        warnings.simplefilter("ignore")
        for name in sorted(allowed_imports - {"__future__"}):
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            _walk(module, public, private, seen, walked, depth=4 if name == "torch" else 1)
        foreign = _foreign(seen.values(), public, allowed_imports)
    return frozenset(public - DENIED_ATTRIBUTES), frozenset(private), frozenset(foreign - public)


def _foreign(modules, public, allowed, depth=3):
    """The names leading from `modules` (the lab's) to modules outside it, and the attributes of
    those, followed through public names down to `depth` (a denied name is refused anyway)."""
    foreign, seen = set(), set()
    frontier = list(modules)
    for level in range(depth + 1):
        following = []
        for module in frontier:
            for name in dir(module):
                value = _attribute(module, name) if not name.startswith("_") and name not in DENIED_ATTRIBUTES else None
                if level:
                    foreign.add(name)
                if isinstance(value, types.ModuleType) and value.__name__ not in seen and not _in_lab(value, allowed):
                    seen.add(value.__name__)
                    foreign.add(name)
                    if not level or name in public:
                        following.append(value)
        frontier = following
    return foreign


def _in_lab(module, allowed):
    """Whether a module is one the lab's surface offers: an allowed one, or a public part of it."""
    parts = module.__name__.split(".")
    return parts[0] in allowed and not _private_or_denied(parts)


def _private_or_denied(parts):
    """Whether the module path `parts` has a private part or, in torch, one of torch's file, code
    or process parts (`utils` only as torch.utils itself: torch.nn.utils is the lab's)."""
    if any(p.startswith("_") for p in parts[1:]):
        return True
    return parts[0] == "torch" and (bool(set(parts[1:]) & TORCH_DENIED_ANYWHERE) or parts[1:2] == ["utils"])


def _attribute(owner, name):
    """owner.name, or None where reading it fails (a lazy attribute that cannot load here)."""
    try:
        return getattr(owner, name)
    except Exception:  # noqa: BLE001 - not the lab's either way
        return None


def _walk(top, public, private, seen, walked, depth):
    """Add what `top` offers, and its own submodules' (down to `depth`, shallowest first, so that
    a module also reached from deep inside is walked from where it is nearest), to the vocabulary;
    `seen`: {name: module} of those walked; `walked`: as _names_of."""
    queue = [(top, depth)]
    while queue:
        module, left = queue.pop(0)
        if module.__name__ in seen:
            continue
        seen[module.__name__] = module
        for name, value in _offered(module, private):
            public.add(name)
            if isinstance(value, types.ModuleType):
                if left:
                    queue.append((value, left - 1))
            elif isinstance(value, type):
                _names_of(value, public, private, walked)


def _offered(module, private):
    """(name, value) of what `module` offers as its own: its submodules, and what it defines or
    lists in `__all__` (not what it imported, functools.wraps in a torch module); its `_x` names
    that hold something from outside it (`collections._sys`) go to `private`."""
    root = module.__name__.split(".")[0]
    listed = getattr(module, "__all__", None)
    for name in dir(module):
        if name.startswith("_"):
            if not name.endswith("__") and _foreign_value(_attribute(module, name), root):
                private.add(name)
            continue
        value = _attribute(module, name)
        if value is None:
            continue
        home = str(getattr(value, "__module__", None) or getattr(value, "__name__", ""))
        if isinstance(value, types.ModuleType):
            if value.__name__.split(".")[0] == root and not _private_or_denied(value.__name__.split(".")):
                yield name, value
        elif listed is not None and name not in listed and not home.startswith(root):
            continue
        elif listed is None and callable(value) and not home.startswith((root, "builtins")):
            continue
        else:
            yield name, value


def _foreign_value(value, root):
    """Whether a private attribute holds a module, or something made outside `root`'s package."""
    if isinstance(value, types.ModuleType):
        return True
    home = getattr(value, "__module__", None)
    return isinstance(home, str) and not home.startswith((root, "builtins"))


def _names_of(kind, public, private, walked):
    """A class's attribute names: its own and its bases', its annotations and constructor arguments.
    `walked`: what is read already, each class's own attributes and each constructor once (torch's
    thousands of classes share their bases, and its modules each other's classes)."""
    if ("constructor", id(kind)) in walked:
        return
    walked.add(("constructor", id(kind)))
    for cls in kind.__mro__:
        if ("attributes", id(cls)) in walked:
            continue
        walked.add(("attributes", id(cls)))
        for name in [*vars(cls), *getattr(cls, "__annotations__", {})]:
            if not name.startswith("_"):
                public.add(name)
            elif not name.endswith("__") and isinstance(vars(cls).get(name), types.ModuleType):
                private.add(name)
    try:
        public.update(p for p in inspect.signature(kind.__init__).parameters if not p.startswith("_"))
    except (TypeError, ValueError):
        pass


def _defined(body):
    """(every name the file binds, the `_x` of each `self._x` it assigns)."""
    names, own = set(), set()
    for node in (n for top in body for n in ast.walk(top)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                own.add(node.attr)
    return names, own


def _arguments(args):
    return [*args.posonlyargs, *args.args, *args.kwonlyargs, *filter(None, [args.vararg, args.kwarg])]


def _classes(body):
    """(the names of the file's classes, of their methods and of its functions): a method is reached
    only through an instance, where `self` is that instance."""
    classes, methods, functions = set(), set(), set()
    for node in (n for top in body for n in ast.walk(top)):
        if isinstance(node, ast.ClassDef):
            classes.add(node.name)
            methods.update(f.name for f in node.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)))
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            functions.add(node.name)
    return classes, methods, functions


def _is_main_block(node):
    """`if __name__ == "__main__":` at the top level, exactly, with no `else`: the one block that
    never runs when the grader imports the file (any other test of `__name__` may run there)."""
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__"
            and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq) and len(test.comparators) == 1
            and isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value == "__main__"
            and not node.orelse)


class _Checker(ast.NodeVisitor):
    def __init__(self, allowed, body):
        self.allowed = allowed
        self.aliases = {}  # name bound by an import -> the module or object it names
        self.public, self.private, self.foreign = vocabulary(allowed)
        self.defined, self.own = _defined(body)
        # The functions being visited, innermost last: None where one binds no `self`, else whether it
        # is a method (`self` is only ever a function's first parameter, never rebound).
        self.binders = []
        self.in_class = [False]  # whether the innermost scope being visited is a class body
        self.first_parameter = False  # whether the next parameter visited is a function's first
        self.classes, self.methods_defined, self.functions = _classes(body)

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
            if _private_or_denied([*node.module.split("."), alias.name]) and not alias.name.startswith("_"):
                self.refuse(node, f"imports torch's {alias.name}, which reads or writes files or runs code")
            value = getattr(module, alias.name, None) if module is not None else None
            self.judge_value(node, value, f"{node.module}.{alias.name}")
            if node.module != "__future__":
                self.attribute(node, alias.name)
            self.aliases[alias.asname or alias.name] = value

    def module(self, node, name):
        """The allowed module `name`, imported here (before the submission runs) to resolve what it holds."""
        parts = name.split(".")
        if parts[0] not in self.allowed:
            tamper = parts[0] in POWERFUL_MODULES
            reason = (f"imports {name}, which reaches past the lab (the interpreter, files or the grader)" if tamper
                      else f"imports {name}, which this lab does not allow; remove it "
                           f"(allowed: {', '.join(sorted(self.allowed))})")
            self.refuse(node, reason, tamper)
        if _private_or_denied(parts):
            self.refuse(node, f"imports {name}, a part of torch that reads or writes files or runs code")
        try:
            return importlib.import_module(name)
        except ImportError:
            return None  # the runner will say it does not exist

    def judge_value(self, node, value, where):
        """Refuse a name that resolves to a module outside the allowlist (torch.os, typing.operator)."""
        if isinstance(value, types.ModuleType) and not _in_lab(value, self.allowed):
            self.refuse(node, f"reaches the module {value.__name__} through {where}")

    # -- names and attributes --------------------------------------------------------------------
    def visit_Name(self, node):
        if node.id in FORBIDDEN_BUILTINS or (node.id.startswith("__") and node.id not in DUNDERS_ALLOWED):
            self.refuse(node, f"uses {node.id}, which reaches the interpreter; the lab never needs it")
        if node.id == "self" and not isinstance(node.ctx, ast.Load):
            self.refuse(node, "assigns to self; self is a method's own object, its first parameter")
        if node.id == "type":  # type(name, bases, namespace), and any class's type, make classes unseen
            self.refuse(node, "uses type, which can make classes the rules never see; use isinstance(x, T), "
                              "and write classes with a class statement", tamper=False)
        if self.in_class[-1] and node.id in self.methods_defined and isinstance(node.ctx, ast.Load):
            self.refuse(node, f"uses the method {node.id} as a value in its class's body; call it on an instance",
                        tamper=False)
        if node.id == "__name__" and not isinstance(node.ctx, ast.Load):
            self.refuse(node, "assigns to __name__, which decides whether the demo block runs")

    def visit_arg(self, node):
        if node.arg == "self" and not self.first_parameter:
            self.refuse(node, "names a parameter self that is not a function's first; call it something else",
                        tamper=False)
        self.first_parameter = False
        self.generic_visit(node)

    def visit_Lambda(self, node):
        self.scope(node, method=False)

    def visit_Attribute(self, node):
        steps, base = [], node
        while isinstance(base, ast.Attribute):
            steps.insert(0, base)
            base = base.value
        for step in steps:  # a chain's dunders first, innermost first: the worse of two reasons
            if step.attr.startswith("__") and step.attr.endswith("__"):
                self.attribute(step, step.attr)
        self.generic_visit(node)  # the innermost step first: `torch.fx.x` is refused for torch.fx
        if isinstance(node.value, ast.Name) and node.value.id in self.classes and node.attr in self.methods_defined:
            self.refuse(node, f"reads the method {node.attr} off the class {node.value.id}; call it on an instance "
                              f"(self.{node.attr}(...)) or through super().{node.attr}(...)", tamper=False)
        self.resolve(node)
        if node.attr in OWNED and self.resolve(node.value) is not importlib.import_module(OWNED[node.attr]):
            self.refuse(node, f"uses .{node.attr} on something other than {OWNED[node.attr]} (the lab's is "
                              f"{OWNED[node.attr]}.{node.attr}, named as such)")
        self.attribute(node, node.attr, node.value)
        if node.attr in ("format", "format_map"):
            self.format_call(node)

    def attribute(self, node, name, owner=None):
        """Refuse the attribute `name` (read off `owner`, an expression, when known) unless allowed."""
        if name.startswith("__") and name.endswith("__"):
            if name not in DUNDERS_ALLOWED:
                self.refuse(node, f"uses .{name}, which reaches past the lab's contract")
            return
        if name.startswith("_"):
            binder = next((b for b in reversed(self.binders) if b is not None), False)
            on_self = isinstance(owner, ast.Name) and owner.id == "self" and binder  # a method's own instance
            if not on_self or name not in self.own or name in self.private:
                self.refuse(node, f"uses .{name}, a private attribute of something that is not yours (only the "
                                  "self._x your own code sets are)")
            return
        if name in FRAME_ATTRIBUTES:
            self.refuse(node, f"uses .{name}, which reaches the interpreter's frames")
        if name in DENIED_ATTRIBUTES:
            self.refuse(node, f"uses .{name}, which reaches files, processes, the interpreter or attributes by name")
        if name in self.public:
            return
        if name in self.defined and name in self.foreign:
            self.refuse(node, f"uses .{name}, a name your file defines that is also one of a module outside the "
                              "lab; rename it", tamper=False)
        if name not in self.defined:
            self.refuse(node, f"uses .{name}, which is neither torch's API, a method of Python's built-in types nor "
                              "a name your file defines; the lab never needs it", tamper=False)

    def format_call(self, node):
        """`"{0.attr}".format(x)` reads attributes by the text's names: the text must be a literal,
        and each attribute it names allowed."""
        if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
            self.refuse(node, f"uses .{node.attr} on text that is not written in the file; use an f-string",
                        tamper=False)
        self.format_fields(node, node.value.value)

    def format_fields(self, node, text):
        """Each attribute `text`'s fields read, those nested in a field's format spec included."""
        for _, field, spec, _ in string.Formatter().parse(text):
            for part in (field or "").replace("[", ".[").split(".")[1:]:
                if not part.startswith("["):
                    self.attribute(node, part)
            if spec and "{" in spec:
                self.format_fields(node, spec)

    def visit_Match(self, node):
        for pattern in (n for case in node.cases for n in ast.walk(case.pattern)):
            for name in getattr(pattern, "kwd_attrs", []):  # `case object(__self__=b)` reads attributes
                self.attribute(node, name)
        self.refuse(node, "uses a match statement, which the grader does not allow; use if/elif", tamper=False)

    def visit_FunctionDef(self, node):
        if node.name.startswith("__") and node.name.endswith("__") and node.name not in DUNDER_DEFINITIONS:
            self.refuse(node, f"defines {node.name}, a special method the grader does not allow (only "
                              f"{', '.join(sorted(DUNDER_DEFINITIONS))})", tamper=False)
        for annotation in [node.returns, *(a.annotation for a in _arguments(node.args))]:
            self.annotation(annotation)
        positional = [*node.args.posonlyargs, *node.args.args]
        method = (self.in_class[-1] and bool(positional) and positional[0].arg == "self"
                  and not any(isinstance(d, ast.Name) and d.id in ("staticmethod", "classmethod")
                              for d in node.decorator_list))
        for decorator in node.decorator_list:
            if method and any(isinstance(n, ast.Name) and n.id in self.functions for n in ast.walk(decorator)):
                self.refuse(decorator, f"decorates the method {node.name} with a function of the file's own, which "
                                       "holds the method as a plain function", tamper=False)
            self.visit(decorator)
        self.scope(node, method)

    visit_AsyncFunctionDef = visit_FunctionDef

    def scope(self, node, method):
        """Visit a function's parameters and body (a def's or a lambda's) as a scope of its own."""
        positional = [*node.args.posonlyargs, *node.args.args]
        binds = bool(positional) and positional[0].arg == "self"
        self.binders.append(method if binds else None)
        self.in_class.append(False)
        self.first_parameter = True
        self.visit(node.args)
        self.first_parameter = False
        for part in node.body if isinstance(node.body, list) else [node.body]:
            self.visit(part)
        if getattr(node, "returns", None) is not None:
            self.visit(node.returns)
        self.in_class.pop()
        self.binders.pop()

    def visit_AnnAssign(self, node):
        self.annotation(node.annotation)
        self.generic_visit(node)

    def annotation(self, annotation):
        """A string annotation is code the rules cannot see, which typing's helpers would evaluate."""
        for part in ast.walk(annotation) if annotation is not None else ():
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                self.refuse(part, "uses a string as a type annotation; write the type itself", tamper=False)

    def visit_ClassDef(self, node):
        if node.keywords:
            self.refuse(node, f"passes {node.keywords[0].arg}= to class {node.name}; the lab's classes need no "
                              "metaclass or class keywords", tamper=False)
        for part in [*node.bases, *node.decorator_list]:
            self.visit(part)
        self.in_class.append(True)
        for part in node.body:
            self.visit(part)
        self.in_class.pop()

    def resolve(self, node):
        """Follow `alias.a.b` through the real modules, refusing a step into a module the rules
        deny; the value it names, or None where it cannot be known here."""
        chain, base = [], node
        while isinstance(base, ast.Attribute):
            chain.insert(0, base.attr)
            base = base.value
        if not isinstance(base, ast.Name) or base.id not in self.aliases:
            return None
        value, where = self.aliases[base.id], base.id
        for attr in chain:
            if value is None:
                return None
            value, where = _attribute(value, attr), f"{where}.{attr}"
            self.judge_value(node, value, where)
        return value

    def visit_Assign(self, node):
        """`dc = dataclasses` names the module too: later steps from `dc` are followed as from it.
        (Any other way to pass a module around meets the attribute names' own rules.)"""
        self.generic_visit(node)
        if isinstance(node.value, (ast.Name, ast.Attribute)):
            value = self.resolve(node.value)
            for target in node.targets:
                if isinstance(target, ast.Name):
                    self.aliases[target.id] = value
