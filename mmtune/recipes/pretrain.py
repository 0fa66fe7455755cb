"""Pre-train the built-in world MLLM: the base model every tuning experiment starts from.

Stage 1, modality alignment: only the projector trains, on captions (LLaVA's recipe).
Stage 2, multimodal instruction tuning: language model + projector train on the seen tasks, mixed with
text-only instructions (hybrid composition). Downstream tasks are never shown.

The result lives under ``$MMTUNE_HOME/world/base/`` in a directory keyed by preset, seed and a hash
of everything that shapes it (world vocabulary, model config, recipe settings), so a change to any
of them trains a new base instead of silently reusing a stale one; an existing base is reused.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from mmtune.files import atomic_write_json, mmtune_home
from mmtune.recipes.sft import FINAL_DIR, LOGS_DIR, TrainingConfig, train_sft
from mmtune.world.scenes import DEFAULT_WORLD, world_variant, world_variant_named

WORLD_VERSION = 5  # bump when scene rendering or task generation changes what a seed produces
# A caption has ~10x the answer tokens of a short answer and a description ~30x; at an equal share
# they would dominate the token-averaged loss, so stage 2 sees a quarter as many captions and a
# twelfth as many descriptions as samples_per_task.
LONG_ANSWER_SHARE = {"caption": 4, "describe": 12}


@dataclass(frozen=True)
class PretrainPreset:
    """How much of the world a base sees, and how long it trains."""

    model: str  # world model preset, see mmtune.world.model.PRESETS
    samples_per_task: int  # training samples per seen task
    text_only: int  # language instructions mixed in, half of them beside an unrelated image
    align_steps: int
    align_lr: float
    instruct_steps: int
    lr: float
    batch_size: int
    # The world its samples come from: "independent" (kinds drawn independently, exact captions) or a
    # variant of world.scenes.WORLD_VARIANTS (co-occurring kinds, noisy captions), whose bases also
    # learn the describe task, the setting their hallucination is measured in.
    world: str = DEFAULT_WORLD
    # Interleaved multi-image documents in stage 2 (world.tasks.interleaved): fast-binding episodes
    # with training names, documents of several captioned scenes, and the text instructions that repeat
    # names. 0 in every preset before them.
    binding_documents: int = 0
    caption_documents: int = 0
    name_repeats: int = 0
    # Batch samples of similar length together: an episode of five images is ~4x a seen sample, and
    # mixed into every batch it would pad all of them to its length.
    group_by_length: bool = False


_QUICK = PretrainPreset("tiny", 3000, 750, 30, 1e-3, 2100, 1.5e-3, 32)
PRESETS: dict[str, PretrainPreset] = {
    # quick: a few minutes on 2 CPU cores; the base every test-sized experiment uses.
    "quick": _QUICK,
    "full": PretrainPreset("small", 10000, 3000, 200, 1e-3, 8000, 1e-3, 32),
    # quick-cooc: the quick recipe on the "cooc" world, a base that hallucinates usual companions
    # (what preference alignment is meant to fix).
    "quick-cooc": dataclasses.replace(_QUICK, world="cooc"),
    # quick-icl: the quick mix plus interleaved documents, a base that can learn in context (fast
    # binding). 9000 documents on the 16500 samples of quick; a third more steps, so each seen sample
    # is met 3.5 times instead of 4.1, and the five-image episodes are batched by length.
    "quick-icl": dataclasses.replace(_QUICK, binding_documents=6000, caption_documents=1000, name_repeats=2000,
                                     instruct_steps=2800, group_by_length=True),
}
# Fields a preset leaves at these defaults stay out of its settings hash, so bases trained before the
# field existed keep their key.
_UNHASHED_DEFAULTS = {"binding_documents": 0, "caption_documents": 0, "name_repeats": 0, "group_by_length": False}


def _preset(name: str) -> PretrainPreset:
    if name not in PRESETS:
        raise ValueError(f"unknown pretraining preset {name!r}; use one of {sorted(PRESETS)}")
    return PRESETS[name]


def settings_hash(preset: str, *, projector: str = "mlp") -> str:
    """A short hash of the world, model and recipe settings a base model depends on."""
    from mmtune.world.language import vocabulary
    from mmtune.world.model import tiny_model_config

    p = _preset(preset)
    recipe = dataclasses.asdict(p)
    settings = {
        "world": WORLD_VERSION,
        "vocabulary": vocabulary(),
        "model": tiny_model_config(p.model, projector).to_dict(),
        "recipe": recipe,
    }
    if p.world == DEFAULT_WORLD:  # only a variant is named, so the default bases already trained keep their key
        del recipe["world"]
    else:
        settings["world_variant"] = dataclasses.asdict(world_variant_named(p.world))
        settings["long_answer_share"] = LONG_ANSWER_SHARE
    for key, default in _UNHASHED_DEFAULTS.items():
        if recipe[key] == default:
            del recipe[key]
    if projector != "mlp":  # only then, so the default bases already trained keep their key
        settings["projector"] = projector
    blob = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:10]


def base_model_dir(preset: str = "quick", seed: int = 0, *, projector: str = "mlp") -> Path:
    """Where the base for (preset, seed, projector) lives; a non-default projector is in the name."""
    name = preset if projector == "mlp" else f"{preset}-{projector}"
    return mmtune_home() / "world" / "base" / f"{name}-seed{seed}-{settings_hash(preset, projector=projector)}"


def ensure_base_model(preset: str = "quick", seed: int = 0, *, force: bool = False, projector: str = "mlp") -> Path:
    """The pre-trained base for (preset, seed, projector): reused when present, else trained and saved."""
    out = base_model_dir(preset, seed, projector=projector)
    if (out / "config.json").is_file() and not force:
        return out
    return pretrain(preset, seed, out, projector=projector)


def pretrain_samples(preset: str, seed: int) -> tuple[list, list]:
    """(stage-1 caption samples, stage-2 seen-task + text-only mix + interleaved documents), deterministic
    for a seed."""
    from mmtune.world.tasks import get_world_task, seen_tasks, text_instructions_beside_images, text_only_instructions
    from mmtune.world.tasks.interleaved import binding_documents, caption_documents, name_repeats

    p = _preset(preset)
    tasks = [t for t in seen_tasks() if t.name != "describe" or p.world != DEFAULT_WORLD]
    with world_variant(p.world):
        captions = get_world_task("caption").samples("train", p.samples_per_task, seed)
        mix = [s for task in tasks
               for s in task.samples("train", p.samples_per_task // LONG_ANSWER_SHARE.get(task.name, 1), seed)]
        # Half the language instructions are asked beside an unrelated image (see
        # world.tasks.text_instructions_beside_images).
        text = text_only_instructions(p.text_only - p.text_only // 2, seed)
        mix += text + text_instructions_beside_images(p.text_only // 2, seed)
    documents = binding_documents(p.binding_documents, seed) + caption_documents(p.caption_documents, seed)
    return captions, mix + documents + name_repeats(p.name_repeats, seed)


def pretrain(preset: str, seed: int, out_dir: Path, *, projector: str = "mlp") -> Path:
    """Run both stages and move the result to ``out_dir`` (atomically: a crash leaves no base).

    ``projector`` is the world model's (``world.model.PROJECTORS``): "mlp" or "resampler"."""
    from mmtune.world.model import build_base_model
    from mmtune.world.tokenizer import world_processor

    p = _preset(preset)
    work = out_dir.with_name(out_dir.name + ".work")
    shutil.rmtree(work, ignore_errors=True)
    start = time.perf_counter()
    model, processor = build_base_model(p.model, seed, projector), world_processor()
    captions, mix = pretrain_samples(preset, seed)

    def stage(name: str, samples: list, strategy: str, steps: int, lr: float):
        training = TrainingConfig(lr=lr, max_steps=steps, batch_size=p.batch_size, lr_scheduler="cosine",
                                  warmup_ratio=0.05, seed=seed, save_steps=0, logging_steps=25,
                                  group_by_length=p.group_by_length,
                                  # the LM head at every position: the float path the bases were trained
                                  # on (the head is small here; at label positions only, a base differs in
                                  # its last bits and, at this budget, by a few points: MME 76 vs 80)
                                  logits_at_labels=False,
                                  dataloader_workers=0)  # a collating worker slowed a 2-core CPU: 6.2 vs 7.3 it/s
        return train_sft(model, processor, samples, strategy=strategy, output_dir=work / name, training=training,
                         logging_dir=work / LOGS_DIR / name)

    align = stage("align", captions, "projector", p.align_steps, p.align_lr)
    model = align.model
    # The vision encoder stays frozen (LLaVA's recipe; see world.vision for why it is informative).
    instruct = stage("instruct", mix, "llm+projector", p.instruct_steps, p.lr)
    seconds = time.perf_counter() - start
    atomic_write_json(work / "instruct" / FINAL_DIR / "pretrain.json", {
        "preset": preset, "seed": seed, "projector": projector,
        "settings_hash": settings_hash(preset, projector=projector),
        "recipe": dataclasses.asdict(p), "seconds": seconds,
        "align_losses": align.losses, "instruct_losses": instruct.losses,
    })
    if (work / LOGS_DIR).is_dir():  # both stages' training curves (TensorBoard) stay with the base
        os.replace(work / LOGS_DIR, work / "instruct" / FINAL_DIR / LOGS_DIR)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    os.replace(work / "instruct" / FINAL_DIR, out_dir)
    shutil.rmtree(work, ignore_errors=True)
    return out_dir
