"""The lab's contract, as the grader exercises it: one place for the sizes, steps and names that
the probes use and the checks judge. Imports nothing heavy, so checks can read it freely."""
import math

MODES = ("real", "virtual")  # real: two CUDA GPUs; virtual: CPU-backed ones
MODE_CHOICES = ("auto", *MODES)  # what --grader-mode takes: auto is real when two GPUs are visible
MODE_HELP = "real: two CUDA GPUs; virtual: CPU-backed ones; auto (default): real when two are visible"
# Tensor methods that read a value into Python: each waits for the tensor's GPU, like a synchronize.
HOST_READS = frozenset(
    {"item", "tolist", "numpy", "__float__", "__int__", "__bool__", "__index__", "__format__", "__repr__"}
)
BATCH = 32
STEPS = 6  # not train()'s default (5): a train() that ignores `steps` shows
DEFAULT_LR = 0.01  # train()'s default in the starter
LR = 0.02  # not the default: a train() that ignores `lr` shows
LARGE_BATCH = 8192  # large enough that a forward without synchronize is visibly shorter (H100)
PROFILE_BATCHES = (32, 256)  # profile_stages' figures must grow with the batch
PIPELINE_BATCH, SPLIT = 128, 32
MICRO_BATCHES = math.ceil(PIPELINE_BATCH / SPLIT)
# The two layers' parameters by role, located by shape so that any attribute names work.
SHAPES = {"w1": (2000, 1000), "b1": (2000,), "w2": (1000, 2000), "b2": (1000,)}
# Seeds of the grader's own weights and batches: both sides draw the same tensors from them.
SEEDS = {"forward": 10, "train": 12, "time_forward": 13, "profile": 14, "pipeline": 15}
PROFILE_KEYS = ("stage0_ms", "transfer_ms", "stage1_ms", "wall_ms", "idle_fraction")
TAMPER = "tamper-suspected"  # the word every channel (table, JSON, batch status) uses for abuse


WALL_FACTOR = 4  # a probe's wall-clock backstop, in multiples of its CPU-time limit


def wall_seconds(seconds_per_function: float) -> float:
    """The wall-clock backstop of one probe whose CPU time is limited to `seconds_per_function`:
    generous, so that a neighbour's load (which slows the clock, not the CPU time) never reaches it;
    it only ends a probe that waits or sleeps."""
    return WALL_FACTOR * seconds_per_function


def probe_seconds(seconds_per_function: float, mode: str, probes: int) -> float:
    """How long, by the wall clock, `probes` probes of a submission may take together: one after
    another on real GPUs (whose timings must not disturb each other), side by side on virtual ones."""
    return wall_seconds(seconds_per_function) * (probes if mode == "real" else 1)
