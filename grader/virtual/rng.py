"""Each virtual GPU's own random number generator, as each real GPU has one.

`torch.cuda.manual_seed` seeds the current GPU's, `manual_seed_all` and `torch.manual_seed` every
GPU's, and a random op whose result is on a GPU (`torch.randn(..., device="cuda:1")`, dropout of a
GPU tensor, a layer initialised on a GPU) draws from that GPU's generator, not from the CPU's. The
numbers differ from a real GPU's (another algorithm), but seeding makes them repeat as it does there.
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
# torch.cuda's random-state functions, answered by VirtualRandom's methods of the same names.
NAMES = ("manual_seed manual_seed_all seed seed_all initial_seed get_rng_state set_rng_state "
         "get_rng_state_all set_rng_state_all").split()


class VirtualRandom:
    def __init__(self, gpus):
        self.gpus = gpus
        self.generators = [torch.Generator() for _ in range(gpus.count)]
        for generator in self.generators:  # a seed set before the runtime started holds for the GPUs too
            generator.manual_seed(torch.initial_seed())

    def install(self, patcher):
        for name in NAMES:
            patcher.setattr(torch.cuda, name, getattr(self, name))
            patcher.setattr(torch.cuda.random, name, getattr(self, name))
        seed_everything, reseed_everything = torch.manual_seed, torch.seed

        def manual_seed(seed):
            """torch.manual_seed seeds the CPU and every GPU."""
            self.manual_seed_all(seed)
            return seed_everything(seed)

        def seed():
            value = reseed_everything()
            self.manual_seed_all(value)
            return value

        for module in (torch, torch.random):
            patcher.setattr(module, "manual_seed", manual_seed)
            patcher.setattr(module, "seed", seed)

    def draw(self, index, func, *args, **kwargs):
        """func(*args, **kwargs) drawing from GPU `index`'s generator (lent to the CPU's for the call).
        A CPU generator given for a GPU's draw is refused as CUDA refuses it."""
        if any(isinstance(arg, torch.Generator) for arg in (*args, *kwargs.values())):
            raise RuntimeError("Expected a 'cuda' device type for generator but found 'cpu'")
        cpu, generator = torch.default_generator, self.generators[index]
        own = cpu.get_state()
        cpu.set_state(generator.get_state())
        try:
            return func(*args, **kwargs)
        finally:
            generator.set_state(cpu.get_state())
            cpu.set_state(own)

    def _generator(self, device):
        return self.generators[self.gpus.index(device)]

    def manual_seed(self, seed):
        self._generator(None).manual_seed(int(seed))

    def manual_seed_all(self, seed):
        for generator in self.generators:
            generator.manual_seed(int(seed))

    def seed(self):
        self._generator(None).seed()

    def seed_all(self):
        value = self._generator(None).seed()
        self.manual_seed_all(value)

    def initial_seed(self):
        return self._generator(None).initial_seed()

    def get_rng_state(self, device="cuda"):
        return self._generator(device).get_state()

    def set_rng_state(self, new_state, device="cuda"):
        self._generator(device).set_state(new_state)

    def get_rng_state_all(self):
        return [generator.get_state() for generator in self.generators[:self.gpus.count]]  # the visible GPUs

    def set_rng_state_all(self, new_states):
        for generator, state in zip(self.generators, new_states):
            generator.set_state(state)
