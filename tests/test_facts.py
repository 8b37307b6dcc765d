"""The probes' facts as types: what crosses from the sandbox is rebuilt strictly, or refused."""
import pytest

from grader import facts as F
from grader.trace import Event


def test_facts_round_trip_through_json():
    step = F.Step([Event("op", "linear", device="cuda:0", flops=10)], [F.Interval(0, 0.0, 1.0, "stage 0", "gemm")])
    pipeline = F.Pipeline(True, None, [128, 1000], step, F.Step([]))
    assert F.Pipeline.from_json(pipeline.to_json()) == pipeline
    losses = F.Train([], None, F.Losses([1.0, "nan"], None, False), {"w1": "cuda:0"}, {"w1": "cuda:0"})
    assert F.Train.from_json(losses.to_json()) == losses


@pytest.mark.parametrize("data", [
    {"value": "fast", "events": []},  # a string where a number belongs
    {"value": 1.0, "events": [{"kind": "op"}]},  # an event without its name
    {"value": 1.0, "events": [{"kind": "rocket", "name": "x"}]},  # an unknown event kind
    {"value": 1.0, "events": [], "extra": 1},  # a field the type does not have
    {"value": True, "events": []},  # a bool is not a number here
    {"events": {}},  # a mapping where a list belongs
    [],
])
def test_malformed_facts_are_refused(data):
    with pytest.raises(F.Malformed):
        F.TimeForward.from_json(data)


def test_the_registry_names_every_probe_with_a_type():
    assert set(F.GRADING) | {"timeline"} == set(F.PROBES)
    assert all(issubclass(p.facts, F.Facts) and p.description for p in F.PROBES.values())
