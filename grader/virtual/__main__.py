"""`python -m grader.virtual SCRIPT.py [ARGS...]`: run any script on two virtual GPUs."""
import runpy
import sys

from grader.trace import Trace
from grader.virtual import virtual_gpus


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    script = argv[0]
    sys.argv = list(argv)
    print("[grader.virtual: cuda:0 and cuda:1 are virtual GPUs backed by the CPU]", file=sys.stderr)
    with virtual_gpus(2, Trace(sources=[script])):
        runpy.run_path(script, run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
