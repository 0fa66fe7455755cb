"""The synthetic world's tasks as eval tasks: ``world_<name>`` for every ``WORLD_TASKS`` entry.

World prompts already carry their instruction (short answer, option letters, yes/no), so the
only template is the prompt itself; parser and metric come from the world task's ``kind``.
A task built with ``variant`` draws its scenes from that world variant (``world.scenes``), with
exact references, and carries the variant (and a POPE split) in its name, so cached answers of
the default sets are never reused for it.
"""
from __future__ import annotations

import functools

from mmtune.data.sample import Sample
from mmtune.eval.task import Task, register_task
from mmtune.eval.tasks.kinds import TASK_KINDS
from mmtune.world.scenes import DEFAULT_WORLD, world_variant
from mmtune.world.tasks import WORLD_TASKS, WorldTask
from mmtune.world.tasks.binding import SHOTS, binding_samples
from mmtune.world.tasks.binding import chance as binding_chance
from mmtune.world.tasks.seen import POPE_SPLITS


def _factory(world: WorldTask):
    def build(split: str = "test", n: int = 200, seed: int = 0, box_format: str = "norm1",
              variant: str = DEFAULT_WORLD, pope_split: str = "") -> Task:
        """``n`` samples of ``split`` (seeded) from world ``variant``; grounding boxes are read in
        ``box_format``; ``pope_split`` (world_pope only) keeps one of POPE's negative samplings."""
        # A world scene's object list is exact: CHAIR reads world names against it alone.
        kw = {"grounding": {"box_format": box_format},
              "describe": {"vocabulary": "world", "truth_from_captions": False}}.get(world.kind, {})
        with world_variant(variant, noisy=False):
            samples = _pope_split(world, split, n, seed, pope_split) if pope_split else world.samples(split, n, seed)
        name = f"world_{world.name}" + (f"_{variant}" if variant != DEFAULT_WORLD else "") + (f"_{pope_split}" * bool(pope_split))
        return TASK_KINDS[world.kind].build(name, samples, chance=world.chance, seen=world.seen,
                                            description=world.description, **kw)

    return build


def _pope_split(world: WorldTask, split: str, n: int, seed: int, pope_split: str) -> list[Sample]:
    """The first ``n`` samples of one POPE split, in the order of the task's own samples."""
    if world.kind != "pope" or pope_split not in POPE_SPLITS:
        raise ValueError(f"eval task world_{world.name}: option pope_split={pope_split!r} needs world_pope and one "
                         f"of {', '.join(POPE_SPLITS)}")
    drawn = 4 * n
    while len(kept := [s for s in world.samples(split, drawn, seed) if s.meta["pope_split"] == pope_split]) < n:
        drawn *= 2
    return kept[:n]


for _world in WORLD_TASKS.values():
    register_task(f"world_{_world.name}", _factory(_world), metric=TASK_KINDS.lookup(_world.kind).metric,
                  chance=_world.chance, seen=_world.seen, description=_world.description)


def _binding(split: str = "test", n: int = 200, seed: int = 0, k: int = 4) -> Task:
    """Fast binding with ``k`` demonstrations (``world.tasks.binding``): exact match of the name."""
    return TASK_KINDS["exact_match"].build(f"world_binding_k{k}", binding_samples(split, n, k, seed), chance=binding_chance(k),
                                           seen=False, description=_BINDING)


_BINDING = "fast binding: name the query's shape by the name a demonstration gave it (k demonstrations)"
register_task("world_binding", _binding, metric="exact_match", seen=False, description=_BINDING)
# One name per evaluated k, so `mmtune eval --tasks world_binding_k0,...` needs no task argument.
for _k in SHOTS:
    register_task(f"world_binding_k{_k}", functools.partial(_binding, k=_k), metric="exact_match",
                  chance=binding_chance(_k), seen=False, description=f"{_BINDING}, k = {_k}")
