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
]
REFUSED = [  # (source, words in the reason, tamper-suspected)
    ("from torch import os", "reaches the module os", True),
    ("import torch\ngetattr(torch, 'o' + 's')", "uses getattr", True),
    ("import collections\ncollections._sys", "uses ._sys", True),
    ("p = print.__self__", "uses .__self__", True),
    ("try:\n    1 / 0\nexcept Exception as e:\n    e.__traceback__", "uses .__traceback__", True),
    ("def g():\n    yield\ng().gi_frame", "uses .gi_frame", True),
    ("import torch\ntorch.load('x', weights_only=False)", "uses .load", True),
    ("from torch.utils.cpp_extension import subprocess", "torch.utils.cpp_extension", True),
    ("import torch\ntorch.fx.graph_module", "torch.fx", True),
    ("import typing\ntyping.operator.attrgetter", "typing.operator", True),
    ("from torch.hub import json", "torch.hub", True),
    ("x = ().__class__.__subclasses__()", "uses .__subclasses__", True),
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
