"""The static rules alone, on source text: the lab's legitimate styles pass, and each way past the
contract is refused with its line, tamper-suspected or neutrally worded as it deserves."""
import pytest
from corpus import ROOT

from grader import rubric, rules

ALLOWED = rubric.load(ROOT / "rubric.yaml").allowed_imports
LEGAL = [
    (ROOT / "solutions" / "model.py").read_text(),
    *(p.read_text() for p in sorted((ROOT / "tests" / "submissions").glob("*.py"))),
    "import torch\ndef f(x):\n    return x.select(0, 1).numpy()\n",
    "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "        self._cache = None\n",
    "from torch import nn, optim\nimport torch.nn.functional as F\nfrom collections import OrderedDict\n",
    "import time\nstart = time.perf_counter_ns()\n",
    "if __name__ == '__main__':\n    import os\n    os.system('demo')\n",  # the demo block never runs here
    (ROOT / "starter" / "model.py").read_text(),
    (ROOT / "tests" / "handout" / "parts_1_to_4.py").read_text(),
    # Honest styles, each on the API's public surface (the allowlist must know every name they use).
    "import time\nt = time.time_ns() - time.monotonic_ns()\n",
    "import itertools\nimport functools\nflat = list(itertools.chain.from_iterable([[1]]))\n"
    "say = functools.partial(print, end='')\n",
    "import dataclasses\n@dataclasses.dataclass\nclass C:\n    x: int = dataclasses.field(default=0)\n",
    "from typing import Optional\ndef f(x: Optional[int] = None) -> list[int]:\n    return [x]\n",
    "print('Step {}, Loss: {:.4f}'.format(1, 2.0))\n",
    "import torch\ne = torch.cuda.Event(enable_timing=True)\ne.record()\ns = torch.cuda.current_stream(1)\n"
    "s.synchronize()\ns.wait_stream(torch.cuda.default_stream(0))\ntorch.accelerator.synchronize()\n"
    "total = torch.cuda.get_device_properties(0).total_memory\n",
    "class M:\n    def __init__(self):\n        self._cache = {}\n    def get(self):\n        return self._cache\n",
    "from collections import defaultdict\nd = defaultdict(list)\nd['a'].append(1)\n",
    "import torch\nx = torch.zeros(2)\nx.cuda(1).cpu().tolist()\ntorch.stack([x]).tolist()\n"
    "opt = torch.optim.SGD([x], lr=0.1)\nlr = opt.param_groups[0]['lr']\nopt.zero_grad(set_to_none=True)\n",
    "import torch\nwith torch.no_grad(), torch.cuda.device(1), torch.cuda.stream(torch.cuda.Stream(1)):\n    pass\n",
    "import torch\nfrom torch.nn.utils import clip_grad_norm_\ntorch.nn.utils.clip_grad_norm_([], 1.0)\n",
    "import torch.nn as nn\nf = nn.utils.clip_grad_norm_\n",
    "class P:\n    one = property(lambda self: 1)\n",  # self as a lambda's first parameter
    # self, as methods use it: a property, a closure in a method.
    "class N:\n    def __init__(self):\n        self._d = 1\n    @property\n    def d(self):\n        return self._d\n"
    "    def h(self):\n        def inner():\n            return self._d\n        return inner()\n",
]
REFUSED = [  # (source, words in the reason, tamper-suspected)
    # Red team, after the rules moved into the sandbox: a guard that runs, self rebound or borrowed,
    # a module wrapped so that resolution loses it, a class made by type(), a field nested in a spec.
    ('if __name__ != "__main__":\n    import os\n', "imports os", True),
    ('if __name__ == "__main__":\n    pass\nelse:\n    import os\n', "imports os", True),
    ("import torch\nclass N:\n    def __init__(self):\n        self._device = None\ndef f():\n    self = torch\n"
     "    return self._device\n", "assigns to self", True),
    ("import torch\nclass N:\n    def __init__(self):\n        self._device = None\ndef f(self):\n"
     "    return self._device\n", "uses ._device, a private attribute", True),
    ("class N:\n    def __init__(self):\n        self._d = None\n    @staticmethod\n    def g(self):\n"
     "        return self._d\n", "uses ._d, a private attribute", True),
    ("import torch\nx = [torch][0].utils\n", "uses .utils on something other than torch.nn", True),
    ("f = lambda x, self: 1\n", "names a parameter self that is not a function's first", False),
    ("class N:\n    def __init__(self):\n        self._d = None\ng = lambda self: self._d\n", "uses ._d, a private",
     True),
    ('E = type("E", (), {})\n', "uses type", False),
    ("class A:\n    pass\nt = type(A)\nB = t('B', (), {})\n", "uses type", False),
    ("class Maker(type):\n    pass\n", "uses type", False),
    ('import dataclasses\nX = dataclasses.make_dataclass("X", [])\n', "uses .make_dataclass", True),
    ('__name__ = "__main__"\nif __name__ == "__main__":\n    import os\n', "assigns to __name__", True),
    ("import torch\nclass Peek:\n    def __init__(self):\n        self._cudart = None\n    def cudart(self):\n"
     "        return self._cudart\nx = Peek.cudart(torch.cuda)\n", "reads the method cudart off the class",
     False),
    ("class Peek:\n    def __init__(self):\n        self._c = None\n    def get(self):\n        return self._c\n"
     "    fns = (get,)\n", "uses the method get as a value", False),
    ("saved = []\ndef keep(f):\n    saved.append(f)\n    return f\nclass Peek:\n    def __init__(self):\n"
     "        self._c = None\n    @keep\n    def get(self):\n        return self._c\n", "decorates the method",
     False),
    ('import torch\ns = "{0:{1.__self__}}".format(1, torch)\n', "uses .__self__", True),
    ("from torch import os", "reaches the module os", True),
    ("import torch\ngetattr(torch, 'o' + 's')", "uses getattr", True),
    ("import collections\ncollections._sys", "through collections._sys", True),
    ("p = print.__self__", "uses .__self__", True),
    # A private name is the file's own only where it sets self._x, and never one the modules use.
    ("import collections\nclass M:\n    def f(self):\n        return self._sys\nM.f(collections)", "uses ._sys", True),
    ("class M:\n    def __init__(self):\n        self._sys = 0\n    def f(self):\n        return self._sys\n",
     "uses ._sys", True),
    # A module passed on by assignment is followed; a name the file defines opens no module outside the lab.
    ("import dataclasses\ndc = dataclasses\nenum = bltns = None\nB = dc.re.enum.bltns", "through dc.re", True),
    ("import dataclasses\nenum = 1\ndef f(m):\n    return m.re.enum\nf(dataclasses)", "uses .enum, a name your file",
     False),
    ("import torch\nx = torch.storage.np", "reaches the module numpy", True),
    ("import torch\nf2py = 0\ndef g(t):\n    return t.numpy.f2py", "uses .f2py, a name your file", False),
    # Attribute names by string: pattern keywords, wrappers' attribute lists, format fields, hints.
    ("match print:\n    case object(__self__=b):\n        pass", "uses .__self__", True),
    ("match 1:\n    case 1:\n        pass", "match statement", False),
    ("import functools\nfunctools.update_wrapper(len, print, assigned=('__self__',))", "uses .update_wrapper", True),
    ("import functools\n@functools.wraps(print)\ndef f():\n    pass", "uses .wraps", True),
    ("from functools import wraps", "uses .wraps", True),
    ("import functools\nfunctools.singledispatch(print)", "uses .singledispatch", True),
    ("import typing\ntyping.get_type_hints(print)", "uses .get_type_hints", True),
    ("def f(x: \"__import__('os')\"):\n    pass", "string as a type annotation", False),
    ("import typing\ny: typing.List['os'] = []", "string as a type annotation", False),
    ("print('{0.__init__.__globals__}'.format(print))", "uses .__globals__", True),
    ("t = '{0}'\nt.format(print)", "text that is not written in the file", False),
    ("import torch\nprint('{0.gpus}'.format(torch.cuda.Event))", "uses .gpus", False),
    # The runtime's own attributes are no API: neutral, and refused.
    ("import torch\ntorch.cuda.Event.gpus.trace.add('sync')", "uses .gpus", False),
    ("def f(c):\n    return c.cell_contents", "uses .cell_contents", True),
    # Special methods that the grader's own code would call on the submission's behalf.
    ("class X:\n    def __getattr__(self, name):\n        return 1", "defines __getattr__", False),
    ("class X:\n    def __del__(self):\n        pass", "defines __del__", False),
    ("class X:\n    def __torch_function__(self):\n        pass", "defines __torch_function__", False),
    ("import collections\nclass X(metaclass=collections.OrderedDict):\n    pass", "passes metaclass=", False),
    ("try:\n    1 / 0\nexcept Exception as e:\n    e.__traceback__", "uses .__traceback__", True),
    ("def g():\n    yield\ng().gi_frame", "uses .gi_frame", True),
    ("import torch\ntorch.load('x', weights_only=False)", "uses .load", True),
    ("from torch.utils.cpp_extension import subprocess", "torch.utils.cpp_extension", True),
    ("import torch\ntorch.fx.graph_module", "torch.fx", True),
    ("import typing\ntyping.operator.attrgetter", "typing.operator", True),
    ("from torch.hub import json", "torch.hub", True),
    ("x = ().__class__.__subclasses__()", "uses .__class__", True),
    ("import torch\nu = torch.utils", "torch.utils", True),
    ("from torch import load", "imports torch's load", True),
    ("import os", "imports os, which reaches past the lab", True),
    ("from . import model", "relative import", True),
    ("exec('1')", "uses exec", True),
    ("import numpy", "imports numpy, which this lab does not allow; remove it", False),
    ("from torch import *", "import the names you use", False),
]


@pytest.mark.parametrize("source", LEGAL, ids=range(len(LEGAL)))
def test_the_labs_styles_are_legal(source):
    rules.check(source, ALLOWED)


@pytest.mark.parametrize("source, words, tamper", REFUSED, ids=[r[1] for r in REFUSED])
def test_reaching_past_the_contract_is_refused_with_its_line(source, words, tamper):
    with pytest.raises(rules.Refusal) as refusal:
        rules.check(source, ALLOWED)
    assert words in str(refusal.value) and refusal.value.tamper == tamper
    assert str(refusal.value).startswith("tamper-suspected: line " if tamper else "line ")
