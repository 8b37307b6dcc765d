"""`python -m grader.runner --socket-fd N`: the zygote the grader starts in its sandbox."""
import sys

from grader.runner.zygote import main

sys.exit(main())
