"""rubric.yaml: the one source of points, validated before anything runs."""
import dataclasses
import math
import pathlib

import yaml

from grader.contract import MODES

# libyaml's safe loader where PyYAML was built with it: every batch worker reads the rubric.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class RubricError(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class Item:
    id: str
    points: float
    title: str
    modes: tuple[str, ...]
    bonus: bool = False
    partial: float | None = None  # partial credit, in steps of this many points; None: all or nothing

    def credit(self, fraction: float) -> float:
        """The points for a check that earned `fraction` of the item: all of them at 1; otherwise
        the fraction, rounded down to the item's step, where partial credit is allowed."""
        if fraction >= 1:
            return self.points
        if not self.partial:
            return 0.0
        return math.floor(self.points * max(fraction, 0.0) / self.partial + 1e-9) * self.partial

    @property
    def max_points(self) -> float:
        """A bonus item's points are extra credit: they count toward the score, not the maximum."""
        return 0.0 if self.bonus else self.points


@dataclasses.dataclass(frozen=True)
class Rubric:
    path: pathlib.Path
    items: dict[str, Item]  # in the file's order
    seconds_per_function: float
    memory_bytes: int
    answer_key: pathlib.Path
    allowed_imports: frozenset[str]

    @property
    def max_score(self) -> float:
        return sum(item.max_points for item in self.items.values())


def load(path: str | pathlib.Path, answer_key: str | pathlib.Path | None = None) -> Rubric:
    """The rubric at `path`; RubricError saying what is wrong. `answer_key`: a key to use instead
    of the one the rubric names (a batch's private copy)."""
    path = pathlib.Path(path)
    try:
        data = yaml.load(path.read_text(), Loader=SAFE_LOADER)  # noqa: S506 - a safe loader
    except (OSError, yaml.YAMLError) as error:
        raise RubricError(f"{path}: cannot read: {error}") from None
    _keys(data, path, required={"items", "limits", "answer_key", "allowed_imports"})
    limits = data["limits"]
    _keys(limits, f"{path}: limits", required={"seconds_per_function", "memory_gib"})
    items = {}
    for n, entry in enumerate(data["items"] or [], 1):
        item = _item(entry, f"{path}: item {n}")
        if item.id in items:
            raise RubricError(f"{path}: item {n}: duplicate id {item.id!r}")
        items[item.id] = item
    if not items:
        raise RubricError(f"{path}: no items")
    for key in ("seconds_per_function", "memory_gib"):
        if not _is_number(limits[key]) or limits[key] <= 0:
            raise RubricError(f"{path}: limits.{key} must be a positive number")
    imports = data["allowed_imports"]
    if not isinstance(imports, list) or not all(isinstance(m, str) and m for m in imports):
        raise RubricError(f"{path}: allowed_imports must be a list of module names")
    return Rubric(
        path=path,
        allowed_imports=frozenset(imports),
        items=items,
        seconds_per_function=float(limits["seconds_per_function"]),
        memory_bytes=int(limits["memory_gib"] * 2**30),
        answer_key=pathlib.Path(answer_key) if answer_key else path.parent / data["answer_key"],
    )


def _item(entry, where):
    _keys(entry, where, required={"id", "points", "title", "modes"}, optional={"bonus", "partial"})
    if not isinstance(entry["id"], str) or not entry["id"]:
        raise RubricError(f"{where}: id must be a non-empty string")
    where = f"{where} ({entry['id']})"
    if not _is_number(entry["points"]) or entry["points"] < 0:
        raise RubricError(f"{where}: points must be a number >= 0, not {entry['points']!r}")
    modes = entry["modes"]
    if not isinstance(modes, list) or not modes or set(modes) - set(MODES):
        raise RubricError(f"{where}: modes must be a non-empty list from {list(MODES)}")
    if not isinstance(entry.get("bonus", False), bool):
        raise RubricError(f"{where}: bonus must be true or false")
    partial = entry.get("partial")
    if partial is not None and not (_is_number(partial) and 0 < partial <= entry["points"]):
        raise RubricError(f"{where}: partial must be a step of points in (0, points], not {partial!r}")
    return Item(entry["id"], float(entry["points"]), str(entry["title"]), tuple(modes), entry.get("bonus", False),
                None if partial is None else float(partial))


def check_mapping(rubric: Rubric, check_ids: list[str]) -> None:
    """Every check must have an item and every item a check: points cannot go missing silently."""
    claimed = set(check_ids)
    unknown = sorted(claimed - set(rubric.items))
    unmapped = [i for i in rubric.items if i not in claimed]
    problems = [f"check {i!r} has no item in {rubric.path}" for i in unknown]
    problems += [f"item {i!r} of {rubric.path} has no check" for i in unmapped]
    duplicated = sorted({i for i in check_ids if list(check_ids).count(i) > 1})
    problems += [f"item {i!r} is claimed by more than one check" for i in duplicated]
    if problems:
        raise RubricError("; ".join(problems))


def _keys(mapping, where, required, optional=frozenset()):
    if not isinstance(mapping, dict):
        raise RubricError(f"{where}: expected a mapping with {sorted(required)}")
    missing, extra = sorted(required - set(mapping)), sorted(set(mapping) - required - optional)
    if missing or extra:
        problems = ([f"missing {missing}"] if missing else []) + ([f"unknown {extra}"] if extra else [])
        raise RubricError(f"{where}: " + ", ".join(problems))


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
