"""Temporary attribute replacement that always restores what it replaced."""


class Patcher:
    """Replace attributes (or dict entries) and put the originals back on `restore()`.

    The runtime patches `torch.cuda` and `time` only while its context is open, so that
    no patch leaks from one test, or one submission, to the next.
    """

    _MISSING = object()

    def __init__(self):
        self._undo = []
        self.replaced = {}  # each function or class replaced -> what replaced it

    def setattr(self, owner, name, value):
        """Set `owner.name`; on restore, put back its own value, or remove it when it had none
        of its own (a method a class inherits stays inherited)."""
        old = getattr(owner, name, self._MISSING)
        self._undo.append((owner, name, vars(owner).get(name, self._MISSING)))
        setattr(owner, name, value)
        if callable(old):  # a function or class a module may have imported by name (never a plain value)
            self.replaced.setdefault(old, value)

    def rebind(self, namespace, replacements=None):
        """Point every name in `namespace` that is bound to a key of `replacements` (by default,
        everything this patcher replaced) at its value.

        This catches `from time import perf_counter` or `from torch.cuda import Event` in a
        module that ran before the patch, which a patch of the module alone would miss.
        """
        replacements = self.replaced if replacements is None else replacements
        for name, value in list(namespace.items()):
            try:
                new = replacements.get(value, self._MISSING)
            except TypeError:  # unhashable value
                continue
            if new is not self._MISSING:
                self._undo.append((namespace, name, value))
                namespace[name] = new

    def restore(self):
        while self._undo:
            owner, name, old = self._undo.pop()
            if isinstance(owner, dict):
                owner[name] = old
            elif old is self._MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, old)
