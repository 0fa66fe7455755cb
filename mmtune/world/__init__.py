"""The synthetic multimodal world: scenes with exact ground truth, seen and downstream task
generators, its word-level tokenizer + LlavaProcessor, and the tiny LLaVA config it pre-trains.

Names resolve lazily so importing ``mmtune.world`` (e.g. for the CLI) does not load transformers.
"""
from __future__ import annotations

from mmtune.lazy import lazy_exports

_EXPORTS = {
    "Scene": "mmtune.world.scenes",
    "SceneObject": "mmtune.world.scenes",
    "render": "mmtune.world.scenes",
    "sample_scene": "mmtune.world.scenes",
    "WORLD_TASKS": "mmtune.world.tasks",
    "WorldTask": "mmtune.world.tasks",
    "get_world_task": "mmtune.world.tasks",
    "seen_tasks": "mmtune.world.tasks",
    "downstream_tasks": "mmtune.world.tasks",
    "text_only_instructions": "mmtune.world.tasks",
    "text_instructions_beside_images": "mmtune.world.tasks",
    "export_llava": "mmtune.world.export",
    "world_tokenizer": "mmtune.world.tokenizer",
    "world_processor": "mmtune.world.tokenizer",
    "tiny_model_config": "mmtune.world.model",
    "build_base_model": "mmtune.world.model",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
