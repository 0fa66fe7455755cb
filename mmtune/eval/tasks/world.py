"""The synthetic world's tasks as eval tasks: ``world_<name>`` for every ``WORLD_TASKS`` entry.

World prompts already carry their instruction (short answer, option letters, yes/no), so the
only template is the prompt itself; parser and metric come from the world task's ``kind``.
"""
from __future__ import annotations

from mmtune.eval.task import Task, register_task
from mmtune.eval.tasks.kinds import TASK_KINDS
from mmtune.world.tasks import WORLD_TASKS, WorldTask


def _factory(world: WorldTask):
    def build(split: str = "test", n: int = 200, seed: int = 0, box_format: str = "norm1") -> Task:
        """``n`` samples of ``split`` (seeded); grounding boxes are read in ``box_format``."""
        # A world scene's object list is exact: CHAIR reads world names against it alone.
        kw = {"grounding": {"box_format": box_format},
              "describe": {"vocabulary": "world", "truth_from_captions": False}}.get(world.kind, {})
        return TASK_KINDS[world.kind].build(f"world_{world.name}", world.samples(split, n, seed),
                                            chance=world.chance, seen=world.seen, description=world.description, **kw)

    return build


for _world in WORLD_TASKS.values():
    register_task(f"world_{_world.name}", _factory(_world), metric=TASK_KINDS.lookup(_world.kind).metric,
                  chance=_world.chance, seen=_world.seen, description=_world.description)
