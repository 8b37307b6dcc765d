"""`python -m grader.virtual SCRIPT.py [ARGS...]`: run any script on two virtual GPUs.

cuda:0 and cuda:1 exist, backed by the CPU, for the whole script: placement, copies, device errors,
synchronize and CUDA events behave as on two real GPUs (README, "Virtual mode", says what is not
modelled). ARGS reach the script as its sys.argv[1:].
"""
import argparse
import pathlib
import runpy
import sys

from grader.trace import Trace
from grader.virtual import virtual_gpus


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m grader.virtual", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("script", type=pathlib.Path, help="the Python file to run")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its own arguments")
    args = parser.parse_args(argv)
    if not args.script.is_file():
        parser.error(f"{args.script} is not a file")
    sys.argv = [str(args.script), *args.args]
    print("[grader.virtual: cuda:0 and cuda:1 are virtual GPUs backed by the CPU]", file=sys.stderr)
    with virtual_gpus(2, Trace(sources=[str(args.script)])):
        runpy.run_path(str(args.script), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
