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
from grader.virtual import CAPACITY, virtual_gpus

MEMORY_HELP = ("each GPU's memory, in GiB (default: %(default)g): past it, allocations fail with CUDA's "
               "out-of-memory error, as on a card of that size")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m grader.virtual", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("script", type=pathlib.Path, help="the Python file to run")
    parser.add_argument("--memory", type=float, default=CAPACITY / 2**30, metavar="GIB",
                        help=MEMORY_HELP)
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its own arguments")
    args = parser.parse_args(argv)
    if not args.script.is_file():
        parser.error(f"{args.script} is not a file")
    if args.memory <= 0:
        parser.error(f"--memory must be more than 0 GiB, not {args.memory:g}")
    sys.argv = [str(args.script), *args.args]
    print(f"[grader.virtual: cuda:0 and cuda:1 are virtual GPUs of {args.memory:g} GiB, backed by the CPU]",
          file=sys.stderr)
    with virtual_gpus(2, Trace(sources=[str(args.script)]), capacity=int(args.memory * 2**30)):
        runpy.run_path(str(args.script), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
