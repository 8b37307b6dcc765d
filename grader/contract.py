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
STEPS = 6  # not train()'s default: a train() that ignores `steps` shows
DEFAULT_STEPS = 5  # train()'s default in the starter
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
# On virtual GPUs, the probes one process runs in turn, each as if it had the process to itself
# (grader.runner.in_turn): a process costs about as much as a light probe. Two groups of about
# equal work, so that a student's run on two cores takes as long as its heavier half; on one core
# (a batch's slot, whose neighbours use the others) one process runs them all.
TOGETHER = (("construct", "forward", "time_forward", "profile"), ("train", "pipeline"))
TAMPER = "tamper-suspected"  # the word every channel (table, JSON, batch status) uses for abuse


WALL_FACTOR = 4  # a probe's wall-clock backstop, in multiples of its CPU-time limit


def wall_seconds(seconds_per_function: float) -> float:
    """The wall-clock backstop of one probe whose CPU time is limited to `seconds_per_function`:
    generous, so that a neighbour's load (which slows the clock, not the CPU time) never reaches it;
    it only ends a probe that waits or sleeps."""
    return WALL_FACTOR * seconds_per_function


def in_turn(probes: list[str], mode: str, cores: int = len(TOGETHER)) -> list[list[str]]:
    """`probes` as the groups a process runs in turn: on real GPUs each probe alone (their timings
    must not disturb each other, nor one's memory peaks another's figures); on virtual ones
    TOGETHER's groups side by side, or with one core to use all of them in one process; and any
    probe in none of them alone."""
    if mode == "real":
        return [[name] for name in probes]
    together = TOGETHER if cores > 1 else [[name for group in TOGETHER for name in group]]
    groups = [[name for name in group if name in probes] for group in together]
    return [group for group in groups if group] + [[name] for name in probes if not any(name in g for g in TOGETHER)]


def probe_seconds(seconds_per_function: float, mode: str, probes: list[str], cores: int = len(TOGETHER)) -> float:
    """How long, by the wall clock, `probes` of a submission may take together: one after another
    on real GPUs, each group of `in_turn` in turn and the groups side by side on virtual ones."""
    count = len(probes) if mode == "real" else max(map(len, in_turn(probes, mode, cores)), default=1)
    return wall_seconds(seconds_per_function) * count
