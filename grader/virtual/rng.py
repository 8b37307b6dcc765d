"""Each virtual GPU's own random number generator, as each real GPU has one.

torch's own random functions run as on CUDA (`torch.cuda.manual_seed` seeds the current GPU's,
`manual_seed_all`, `torch.manual_seed` and `torch.seed` every GPU's, `get_rng_state`, ...): they
reach each GPU's generator through `torch.cuda.default_generators`, which CUDA's initialisation
fills with the visible GPUs' generators, as torch's does (a seed set before then is applied then, as
torch queues it). A random op whose result is on a GPU (`torch.randn(..., device="cuda:1")`,
dropout of a GPU tensor, a layer initialised on a GPU) draws from that GPU's generator, not from
the CPU's. The numbers differ from a real GPU's (another algorithm), but seeding makes them repeat
as it does there.
"""
import torch

# The calls that draw random numbers, by the name the runtime's mode sees them under.
RANDOM = frozenset(
    """rand randn randint randperm rand_like randn_like randint_like normal normal_ uniform_ bernoulli
    bernoulli_ multinomial poisson binomial random_ exponential_ geometric_ cauchy_ log_normal_
    dropout dropout_ dropout1d dropout2d dropout3d alpha_dropout alpha_dropout_ feature_alpha_dropout
    feature_alpha_dropout_ feature_dropout feature_dropout_ native_dropout rrelu rrelu_ gumbel_softmax
    trunc_normal_ kaiming_uniform_ kaiming_normal_ xavier_uniform_ xavier_normal_ orthogonal_ sparse_""".split()
)


class VirtualRandom:
    def __init__(self, gpus):
        self.gpus = gpus
        self.generators = [torch.Generator() for _ in range(gpus.count)]
        for generator in self.generators:  # a seed set before the runtime started holds for the GPUs too
            generator.manual_seed(torch.initial_seed())

    def install(self, patcher):
        patcher.setattr(torch.cuda, "default_generators", ())  # filled when CUDA initialises

    def initialise(self, count):
        """CUDA's initialisation: the `count` visible GPUs' generators become torch.cuda's."""
        torch.cuda.default_generators = tuple(self.generators[:count])

    def draw(self, index, func, *args, **kwargs):
        """func(*args, **kwargs) drawing from GPU `index`'s generator (lent to the CPU's for the call).
        A generator given draws itself: a GPU's (torch.cuda.default_generators); a CPU one is
        refused, as CUDA refuses it."""
        for arg in (*args, *kwargs.values()):
            if isinstance(arg, torch.Generator) and not any(arg is gpu for gpu in self.generators):
                raise RuntimeError("Expected a 'cuda' device type for generator but found 'cpu'")
        cpu, generator = torch.default_generator, self.generators[index]
        own = cpu.get_state()
        cpu.set_state(generator.get_state())
        try:
            return func(*args, **kwargs)
        finally:
            generator.set_state(cpu.get_state())
            cpu.set_state(own)
