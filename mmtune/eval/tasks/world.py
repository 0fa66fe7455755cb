"""The synthetic world's tasks as eval tasks: ``world_<name>`` for every ``WORLD_TASKS`` entry.

World prompts already carry their instruction (short answer, option letters, yes/no), so the
only template is the prompt itself; parser and metric come from the world task's ``kind``.
A task built with ``variant`` draws its scenes from that world variant (``world.scenes``), with
exact references, and carries the variant (and a POPE split) in its name, so cached answers of
the default sets are never reused for it.
"""
from __future__ import annotations

from mmtune.data.sample import Sample
from mmtune.eval.task import Task, register_task
from mmtune.eval.tasks.kinds import TASK_KINDS
from mmtune.world.scenes import DEFAULT_WORLD, world_variant
from mmtune.world.tasks import WORLD_TASKS, WorldTask
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
